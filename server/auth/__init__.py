"""Authentication: bearer JWTs (JWKS or the local dev issuer) and API keys, mapped to a Caller.

Nothing here forwards a token anywhere: tokens are verified locally and dropped.
"""
