"""Connecting to ctnet and typed helpers for the common calls."""
from typing import Iterable, Mapping, Optional, Sequence

import grpc

from ctnet.errors import from_rpc_error
from ctnet.v1 import ctnet_pb2 as pb
from ctnet.v1 import ctnet_pb2_grpc as rpc


def connect_unix(path: str, timeout: float = 30.0) -> "Client":
    """ctnet-api's Unix socket; the server knows the caller by its uid.

    grpcio sends a `unix:` target's socket path as the HTTP/2 `:authority`,
    which ctnet's HTTP/2 stack refuses as malformed, so a fixed authority is
    set instead.
    """
    options = [("grpc.default_authority", "localhost")]
    return Client(grpc.insecure_channel(f"unix:{path}", options=options), timeout)


def connect_tls(
    target: str,
    *,
    ca: str,
    cert: str,
    key: str,
    server_name: Optional[str] = None,
    timeout: float = 30.0,
) -> "Client":
    """ctnet-api's TLS listener (`HOST:PORT`) with a client certificate;
    `ca`, `cert` and `key` are PEM file paths. `server_name` overrides the
    name the server's certificate must carry (default: the target's host)."""

    def read(p: str) -> bytes:
        with open(p, "rb") as f:
            return f.read()

    creds = grpc.ssl_channel_credentials(
        root_certificates=read(ca), private_key=read(key), certificate_chain=read(cert)
    )
    options = [("grpc.ssl_target_name_override", server_name)] if server_name else []
    return Client(grpc.secure_channel(target, creds, options=options), timeout)


def _bridge(networks: Sequence[str]) -> pb.BridgeMode:
    return pb.BridgeMode(networks=[pb.NetworkAttachment(network=n) for n in networks])


class Client:
    """One channel to ctnet-api. The raw stubs are `networks`, `sandboxes`
    and `maintenance`; the methods below wrap the common calls and raise
    `ctnet.CtnetError` subclasses."""

    def __init__(self, channel: grpc.Channel, timeout: float = 30.0):
        self.channel = channel
        self.timeout = timeout
        self.networks = rpc.NetworkServiceStub(channel)
        self.sandboxes = rpc.SandboxServiceStub(channel)
        self.maintenance = rpc.MaintenanceServiceStub(channel)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def call(self, method, request):
        """Any stub method, with the client's deadline and its errors as
        exceptions."""
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # Networks.
    def create_network(
        self,
        name: str,
        subnet: str = "",
        *,
        gateway: Optional[str] = None,
        ipv6_subnet: Optional[str] = None,
        ipv6: bool = False,
        ipv4: bool = True,
        internal: bool = False,
        icc: bool = True,
        mtu: int = 0,
        labels: Optional[Mapping[str, str]] = None,
    ) -> pb.Network:
        """A bridge network. `ipv6` asks for a ULA /64 when no `ipv6_subnet`
        is given; `ipv4=False` makes it IPv6-only."""
        req = pb.CreateNetworkRequest(
            name=name,
            subnet=subnet,
            gateway=gateway,
            ipv6_subnet=ipv6_subnet,
            enable_ipv6=ipv6,
            enable_ipv4=ipv4,
            internal=internal,
            icc=icc,
            mtu=mtu,
            labels=dict(labels or {}),
        )
        return self.call(self.networks.CreateNetwork, req)

    def get_network(self, network: str) -> pb.Network:
        return self.call(self.networks.GetNetwork, pb.GetNetworkRequest(network=network))

    def list_networks(self, labels: Optional[Mapping[str, str]] = None) -> Sequence[pb.Network]:
        req = pb.ListNetworksRequest(label_selector=dict(labels or {}))
        return self.call(self.networks.ListNetworks, req).networks

    def delete_network(self, network: str) -> None:
        self.call(self.networks.DeleteNetwork, pb.DeleteNetworkRequest(network=network))

    # Sandboxes.
    def create_sandbox(
        self,
        name: Optional[str] = None,
        *,
        networks: Sequence[str] = (),
        mode: str = "bridge",
        publish: Iterable[str] = (),
        netns_path: Optional[str] = None,
        mac_address: Optional[str] = None,
        labels: Optional[Mapping[str, str]] = None,
    ) -> pb.Sandbox:
        """`mode` is "bridge" (on `networks`, default the network "bridge"),
        "host", "none" or "container:ID_OR_NAME"; `publish` takes Docker's
        `-p` forms ("8080:80", "127.0.0.1:5353:53/udp", "[::]:9090:90")."""
        req = pb.CreateSandboxRequest(
            name=name,
            publish=list(publish),
            netns_path=netns_path,
            mac_address=mac_address,
            labels=dict(labels or {}),
        )
        if mode == "bridge":
            req.bridge.CopyFrom(_bridge(networks))
        elif mode == "host":
            req.host.SetInParent()
        elif mode == "none":
            req.none.SetInParent()
        elif mode.startswith("container:"):
            req.container.target = mode.split(":", 1)[1]
        else:
            raise ValueError(f"mode {mode!r}: bridge, host, none or container:ID")
        return self.call(self.sandboxes.CreateSandbox, req)

    def get_sandbox(self, sandbox: str) -> pb.Sandbox:
        return self.call(self.sandboxes.GetSandbox, pb.GetSandboxRequest(sandbox=sandbox))

    def list_sandboxes(self, labels: Optional[Mapping[str, str]] = None) -> Sequence[pb.Sandbox]:
        req = pb.ListSandboxesRequest(label_selector=dict(labels or {}))
        return self.call(self.sandboxes.ListSandboxes, req).sandboxes

    def delete_sandbox(self, sandbox: str) -> None:
        self.call(self.sandboxes.DeleteSandbox, pb.DeleteSandboxRequest(sandbox=sandbox))

    def connect(
        self,
        sandbox: str,
        network: str,
        *,
        ipv4_address: Optional[str] = None,
        ipv6_address: Optional[str] = None,
        publish: Iterable[str] = (),
    ) -> pb.Sandbox:
        req = pb.ConnectRequest(
            sandbox=sandbox,
            network=network,
            ipv4_address=ipv4_address,
            ipv6_address=ipv6_address,
            publish=list(publish),
        )
        return self.call(self.sandboxes.Connect, req)

    def disconnect(self, sandbox: str, network: str) -> pb.Sandbox:
        req = pb.DisconnectRequest(sandbox=sandbox, network=network)
        return self.call(self.sandboxes.Disconnect, req)

    def check(self, sandbox: str) -> Sequence[str]:
        """What differs between the sandbox's kernel state and its record."""
        return self.call(self.sandboxes.Check, pb.CheckRequest(sandbox=sandbox)).differences

    def who_am_i(self) -> pb.WhoAmIResponse:
        return self.call(self.maintenance.WhoAmI, pb.WhoAmIRequest())
