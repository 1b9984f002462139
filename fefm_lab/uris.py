"""URIs as they may be shown: the one place a URI is masked before it is printed or logged.

A tracking or backend store URI can carry a secret in its userinfo (`postgresql://u:PW@host/db`,
`https://TOKEN@host`) or in its query (`?password=PW`, `?token=T`). Every message, log line and
MLflow parameter that shows a URI goes through `masked_uri` (or `masked_text` for free text that
may hold one), so no secret reaches a terminal, a log file or the tracking store.
"""

from __future__ import annotations

import re

MASK = "***"
# Query parameters whose value is a secret: a name containing one of these words (any case).
SECRET_QUERY_WORDS = ("password", "passwd", "pwd", "token", "secret", "key")
# SQLAlchemy dialects (before any +driver): their userinfo without `:` is a user name.
DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mariadb", "mssql", "oracle", "sqlite")
_URI_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_QUERY_WORDS)


def _masked_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        name, equals, _value = item.partition("=")
        parts.append(f"{name}={MASK}" if equals and _secret_name(name) else item)
    return "&".join(parts)


def masked_uri(uri: str) -> str:
    """`uri` with the secret of its userinfo and every password-like query value as `***`.

    The userinfo is everything between `scheme://` and the LAST `@`: a password may itself hold
    `@`, `:`, `/`, `?` or `#` unencoded, and masking too much (an `@` in a query) is the safe
    error. `user:password@` keeps the user name; a userinfo without `:` is a user name in a
    database URI and a token (`https://TOKEN@`) elsewhere, masked whole. A URI whose authority
    is empty (`sqlite:////a.db`) has no userinfo.
    """
    scheme, separator, rest = uri.partition("://")
    if not separator:
        scheme, rest = "", uri
    userinfo = ""
    if separator and not rest.startswith("/") and "@" in rest:
        user, colon, _password = rest[: rest.rindex("@")].partition(":")
        if colon:
            userinfo = f"{user}:{MASK}@"
        else:  # a database's lone userinfo is a user name; elsewhere (https://TOKEN@) a secret
            userinfo = (
                f"{user}@" if scheme.split("+")[0].lower() in DATABASE_SCHEMES else MASK + "@"
            )
        rest = rest[rest.rindex("@") + 1 :]
    body, hash_mark, fragment = rest.partition("#")
    body, question, query = body.partition("?")
    masked = f"{scheme}{separator}{userinfo}{body}"
    if question:
        masked += "?" + _masked_query(query)
    if hash_mark:
        masked += "#" + fragment
    return masked


def masked_text(text: str) -> str:
    """Free text (an error message) with every `scheme://...` URI in it masked."""

    def mask(match: re.Match) -> str:
        found = match.group(0)
        uri = found.rstrip(").,;:]")  # punctuation that closes the sentence, not the URI
        return masked_uri(uri) + found[len(uri) :]

    return _URI_IN_TEXT.sub(mask, text)
