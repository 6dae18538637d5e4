"""Queries over committed runs and the HTML report."""
