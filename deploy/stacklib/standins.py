"""Stand-ins for the image and network APIs of the local stack (not Glance, not Neutron).

Real Nova boots servers here, and on the way it asks two services the stack does not run:

* the image service (`GET /v2/images/ID` on create; the `openstack` CLI first discovers the
  version at `GET /` and reads `GET /v2/schemas/image`). The fake virt driver never
  downloads image bytes, so a read-only list of image records is all that is needed;
* the network service, which Nova asks for a server's ports on show and delete even with
  `networks: none`. Until the stack runs real Neutron, every list answers empty.

Both apps follow the documented bodies of the calls Nova and the clients make, keep no
state and refuse every write (405), so nothing can be done through them that would look
like a real image upload or port. One process serves both, under /image and /network:

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
# Collections Nova and the clients list; each answers empty until real Neutron lands.
NETWORK_COLLECTIONS = ("ports", "networks", "subnets", "floatingips", "security_groups",
                       "extensions", "trunks", "qos_policies", "segments")


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


def network_app(environ: dict[str, Any], start_response: StartResponse,
                prefix: str = "/network") -> Iterable[bytes]:
    """GET-only network API answering every collection Nova lists with an empty list."""
    path = environ["PATH_INFO"].rstrip("/").removesuffix(".json")
    if environ["REQUEST_METHOD"] != "GET":
        return _reply(start_response, "405 Method Not Allowed", {"NeutronError": {
            "type": "HTTPMethodNotAllowed", "detail": "",
            "message": "the stack's network stand-in has no ports: it is read-only"}})
    if path == "":
        href = _base_url(environ, prefix) + "/v2.0/"
        return _reply(start_response, "200 OK", {"versions": [
            {"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]})
    collection = path.removeprefix("/v2.0/").replace("-", "_")
    if path.startswith("/v2.0/") and collection in NETWORK_COLLECTIONS:
        return _reply(start_response, "200 OK", {collection: []})
    return _reply(start_response, "404 Not Found", {"NeutronError": {
        "type": "HTTPNotFound", "detail": "", "message": f"The resource could not be found: "
                                                         f"{path}"}})


def application(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Both stand-ins behind one port: /image and /network."""
    path = str(environ.get("PATH_INFO", ""))
    for prefix, app in (("/image", image_app), ("/network", network_app)):
        if path == prefix or path.startswith(prefix + "/"):
            environ["PATH_INFO"] = path[len(prefix):]
            return app(environ, start_response, prefix)
    return _reply(start_response, "404 Not Found", {"message": "try /image or /network"})


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
        print(f"image and network stand-ins on 127.0.0.1:{args.port}", flush=True)
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
