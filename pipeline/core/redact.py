"""Keep credentials out of everything a person or a table sees: errors, logs, rows, markers.

Three shapes of secret reach error text in practice: the value of a credential
variable (a library echoing its configuration), the user-info of a URL
(``https://key:secret@host``, an endpoint someone pasted), and the signature
parameters of a presigned URL. Each is replaced by ``***``.
"""

from __future__ import annotations

import os
import re

SECRET_VARS = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "RAY_AUTH_TOKEN",
)
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/\s@]+)@")
_SIGNED_PARAMS = re.compile(
    r"(?i)(?P<name>X-Amz-(?:Signature|Credential|Security-Token)|Signature|AWSAccessKeyId|sig)=(?P<value>[^&\s\"']+)"
)


def redact(message: str) -> str:
    """``message`` with credential values, URL user-info and presigned-URL signatures replaced by ``***``."""
    for var in SECRET_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            message = message.replace(value, "***")
    message = _URL_USERINFO.sub(lambda m: f"{m['scheme']}***@", message)
    return _SIGNED_PARAMS.sub(lambda m: f"{m['name']}=***", message)


def redact_tree(value):
    """:func:`redact` applied to every string in nested dicts, lists and tuples (a resolved config, a marker)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_tree(v) for v in value]
    return value
