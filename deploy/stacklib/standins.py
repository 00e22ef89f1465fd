"""Stand-in for the image API of the local stack (not Glance).

Real Nova boots servers here, and on the way it asks the image service, which the stack
does not run (`GET /v2/images/ID` on create; the `openstack` CLI first discovers the
version at `GET /` and reads `GET /v2/schemas/image`). The fake virt driver never downloads
image bytes, so a read-only list of image records is all that is needed. The app follows
the documented bodies of those calls, keeps no state and refuses every write (405), so
nothing can be done through it that would look like a real image upload. It serves under
/image (the network API is real Neutron: stacklib/neutron.py):

    python -m stacklib.standins --port 9292
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Json = dict[str, Any]

# The one image the stack offers: its bytes do not exist (the fake driver never reads them).
IMAGE_ID = "5b7c7a44-4d0e-4c3b-9a55-52a4b5f1c0de"
IMAGE_NAME = "stand-in-image"
IMAGE: Json = {
    "id": IMAGE_ID, "name": IMAGE_NAME, "status": "active", "visibility": "public",
    "protected": False, "os_hidden": False, "disk_format": "raw", "container_format": "bare",
    "size": 1048576, "virtual_size": 1048576, "min_disk": 0, "min_ram": 0,
    "checksum": None, "os_hash_algo": None, "os_hash_value": None,
    "owner": None, "tags": [], "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z", "self": f"/v2/images/{IMAGE_ID}",
    "file": f"/v2/images/{IMAGE_ID}/file", "schema": "/v2/schemas/image",
}
# What `GET /v2/schemas/image` must hold for glanceclient to build its model.
IMAGE_SCHEMA: Json = {
    "name": "image", "additionalProperties": {"type": "string"},
    "properties": {key: {"type": ["null", "string", "integer", "boolean", "array"]}
                   for key in IMAGE},
    "links": [{"href": "{self}", "rel": "self"}, {"href": "{file}", "rel": "enclosure"},
              {"href": "{schema}", "rel": "describedby"}],
}


def _reply(start_response: StartResponse, status: str, body: Json) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data)))])
    return [data]


def _base_url(environ: dict[str, Any], prefix: str) -> str:
    host = environ.get("HTTP_HOST") or f"{environ['SERVER_NAME']}:{environ['SERVER_PORT']}"
    return f"http://{host}{prefix}"


def image_app(environ: dict[str, Any], start_response: StartResponse,
              prefix: str = "/image") -> Iterable[bytes]:
    """GET-only image metadata: version discovery, the schema, the list, one image."""
    path = environ["PATH_INFO"].rstrip("/")
    if environ["REQUEST_METHOD"] != "GET":
        return _reply(start_response, "405 Method Not Allowed",
                      {"message": "the stack's image stand-in is read-only"})
    if path == "":
        href = _base_url(environ, prefix) + "/v2/"
        return _reply(start_response, "300 Multiple Choices", {"versions": [
            {"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]})
    if path == "/v2/schemas/image":
        return _reply(start_response, "200 OK", IMAGE_SCHEMA)
    if path == "/v2/images":
        query = parse_qs(environ.get("QUERY_STRING", ""))
        wanted = {key: values[0] for key, values in query.items() if key in ("name", "id")}
        images = [IMAGE] if all(IMAGE[k] == v for k, v in wanted.items()) else []
        return _reply(start_response, "200 OK", {"images": images, "schema": "/v2/schemas/images",
                                                 "first": "/v2/images"})
    if path == f"/v2/images/{IMAGE_ID}":
        return _reply(start_response, "200 OK", IMAGE)
    return _reply(start_response, "404 Not Found", {"message": f"no image at {path}"})


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The image stand-in under /image."""
    path = str(environ.get("PATH_INFO", ""))
    if path == "/image" or path.startswith("/image/"):
        environ["PATH_INFO"] = path[len("/image"):]
        return image_app(environ, start_response, "/image")
    return _reply(start_response, "404 Not Found", {"message": "try /image"})


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f"{self.address_string()} {format % args}\n")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stacklib.standins",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    with make_server("127.0.0.1", args.port, application, server_class=_ThreadingServer,
                     handler_class=_Handler) as server:
        print(f"image stand-in on 127.0.0.1:{args.port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
