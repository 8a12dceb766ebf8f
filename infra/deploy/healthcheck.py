"""Container HEALTHCHECK: GET /healthz on the role's ops port (a TCP connect for ``tcp:``).

The entrypoint writes the port to /tmp/fraudstream-health-port (``HEALTH_PORT_FILE``); a
role without a port (one-shot commands) is healthy while it runs. Exit 0 healthy, 1 not
(Docker's contract).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from pathlib import Path


def main() -> int:
    try:
        where = os.environ.get("HEALTH_PORT_FILE", "/tmp/fraudstream-health-port")  # noqa: S108
        port = Path(where).read_text().strip()
    except OSError:
        return 1
    if not port:
        return 0
    try:
        if port.startswith("tcp:"):
            socket.create_connection(("127.0.0.1", int(port[4:])), timeout=3).close()
            return 0
        url = f"http://127.0.0.1:{int(port)}/healthz"
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
            return 0 if response.status == 200 else 1
    except (OSError, ValueError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
