"""
The HTTP client of the custom modules: one JSON request to a cluster
endpoint (Airflow's REST API, Patroni's REST API), verified against the
cluster CA over https, failures raised as ``CommandExecutionError``.

Synced to minions with the modules (``saltutil.sync_all`` covers utils,
``saltutil.sync_utils`` alone); modules call it as ``__utils__["ha_http.request"]``.
Plain functions: tests and tools may import it as ``_utils.ha_http``.
"""

import json
import ssl
import urllib.error
import urllib.request

from salt.exceptions import CommandExecutionError


def ssl_context(url, ca_file=None, cert_file=None, key_file=None):
    """
    None for an http ``url``; for https a context that verifies the server's
    certificate and name against ``ca_file`` (the cluster CA) or, without
    it, the system's CAs, presenting ``cert_file``/``key_file`` when given.
    """
    if not str(url).lower().startswith("https://"):
        return None
    context = ssl.create_default_context(cafile=ca_file or None)
    if cert_file:
        context.load_cert_chain(cert_file, key_file or None)
    return context


def urlopen(req, timeout=10, context=None):
    """urllib's urlopen with ``context`` (the one place a request leaves)."""
    # nosec: the cluster's own endpoints; https verified against the cluster CA
    return urllib.request.urlopen(req, timeout=timeout, context=context)


def request(method, url, body=None, headers=None, timeout=10, context=None, label=None):
    """
    ``method`` ``url`` with ``body`` as JSON; the answer parsed as JSON (its
    text when it is not JSON, None when empty). ``context``: from
    :py:func:`ssl_context`. Raises ``CommandExecutionError`` starting with
    ``label`` (default ``METHOD URL``): ``HTTP <code>: <body>`` or
    ``unreachable: <reason>``.
    """
    label = label or f"{method} {url}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with urlopen(req, timeout=timeout, context=context) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise CommandExecutionError(f"{label}: HTTP {exc.code} {exc.read().decode()[:300]}")
    except (urllib.error.URLError, OSError) as exc:
        raise CommandExecutionError(f"{label} unreachable: {exc}")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
