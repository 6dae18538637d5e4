"""Measuring and baseline denoising: PESQ/STOI/SI-SDR, DNSMOS, classical and RNNoise baselines."""
