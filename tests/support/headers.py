"""Header names a caller must never get past app_proxy, written out from the standards'
and the attacker's side, never taken from the code's own tables."""

# RFC 9110 §7.6.1 (Connection, and what a proxy removes whether Connection names it or
# not), §11.7.1-2 (the proxy's own authentication), §6.6.2 (Trailer), RFC 9112 §6.1.
HOP_BY_HOP = [
    "Connection",
    "Keep-Alive",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Connection",
]
# What backends and their frameworks read as who called, from where, or what was asked
# (the client's address, the original host or URL, a method override), and what only
# this service signs: docs/app-proxy.md ("What your backend receives").
SPOOFABLE = [
    "Forwarded",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Prefix",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "X-Forwarded-Protocol",
    "X-Forwarded-Server",
    "X-Forwarded-Uri",
    "X-Forwarded-User",  # (authenticating proxies': oauth2-proxy, Apache) every X-Forwarded-*
    "X-Forwarded-Email",
    "X-Real-IP",
    "True-Client-IP",
    "X-Client-IP",
    "Client-IP",
    "X-Cluster-Client-IP",
    "X-Original-Forwarded-For",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-App-Proxy-User-Id",
    "X-App-Proxy-Timestamp",  # signed by earlier versions
    "X-App-Proxy-Signature",
    "X-App-Proxy-Upstream",  # every X-App-Proxy-*: this service's names, to nginx or the app
    "X-App-Proxy-Method",
    "X-App-Proxy-Buffered",
    "X-App-Proxy-Anything",
    "Signature",
    "Signature-Input",
    "Content-Digest",
]
