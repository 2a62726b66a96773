"""The library's RequestID and ProxyHeaders, each written once with the public
``middleware.api`` (``middleware/_request_id.py``, ``middleware/_proxy_headers.py``),
used unchanged on a Flask app and on a FastAPI app, with AccessLog logging both."""
