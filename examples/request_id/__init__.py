"""A request-id middleware and a proxy-headers middleware, each written once with the
public ``middleware.api`` and used unchanged on a Flask app and on a FastAPI app."""
