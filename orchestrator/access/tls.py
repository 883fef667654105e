"""Where the front door's certificates are, and the gRPC credentials made from them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from orchestrator.access.pki import PkiPaths


@dataclass(frozen=True)
class ServerTls:
    ca: Path  # what TLS trusts
    cert: Path
    key: Path
    crl: Path | None  # None: revocation = "none"
    client_ca: Path  # the CA that issues the principals' certificates (and the list)

    @classmethod
    def of_pki(cls, root: Path) -> ServerTls:
        paths = PkiPaths(root)
        return cls(paths.ca_cert, paths.server_cert, paths.server_key, paths.crl, paths.ca_cert)

    def credentials(self) -> grpc.ServerCredentials:
        """TLS only, and a client certificate signed by the CA is required."""
        return grpc.ssl_server_credentials(
            [(self.key.read_bytes(), self.cert.read_bytes())],
            root_certificates=self.ca.read_bytes(),
            require_client_auth=True,
        )
