from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_CREATED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_DELETED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_CONNECTED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_DISCONNECTED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_FAILED: _ClassVar[EventKind]
    EVENT_KIND_SANDBOX_REPAIRED: _ClassVar[EventKind]
    EVENT_KIND_NETWORK_CREATED: _ClassVar[EventKind]
    EVENT_KIND_NETWORK_DELETED: _ClassVar[EventKind]
    EVENT_KIND_DRIFT_REPAIRED: _ClassVar[EventKind]

class SandboxMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_MODE_UNSPECIFIED: _ClassVar[SandboxMode]
    SANDBOX_MODE_BRIDGE: _ClassVar[SandboxMode]
    SANDBOX_MODE_HOST: _ClassVar[SandboxMode]
    SANDBOX_MODE_NONE: _ClassVar[SandboxMode]
    SANDBOX_MODE_CONTAINER: _ClassVar[SandboxMode]

class SandboxState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SANDBOX_STATE_UNSPECIFIED: _ClassVar[SandboxState]
    SANDBOX_STATE_CREATING: _ClassVar[SandboxState]
    SANDBOX_STATE_READY: _ClassVar[SandboxState]
    SANDBOX_STATE_FAILED: _ClassVar[SandboxState]
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_SANDBOX_CREATED: EventKind
EVENT_KIND_SANDBOX_DELETED: EventKind
EVENT_KIND_SANDBOX_CONNECTED: EventKind
EVENT_KIND_SANDBOX_DISCONNECTED: EventKind
EVENT_KIND_SANDBOX_FAILED: EventKind
EVENT_KIND_SANDBOX_REPAIRED: EventKind
EVENT_KIND_NETWORK_CREATED: EventKind
EVENT_KIND_NETWORK_DELETED: EventKind
EVENT_KIND_DRIFT_REPAIRED: EventKind
SANDBOX_MODE_UNSPECIFIED: SandboxMode
SANDBOX_MODE_BRIDGE: SandboxMode
SANDBOX_MODE_HOST: SandboxMode
SANDBOX_MODE_NONE: SandboxMode
SANDBOX_MODE_CONTAINER: SandboxMode
SANDBOX_STATE_UNSPECIFIED: SandboxState
SANDBOX_STATE_CREATING: SandboxState
SANDBOX_STATE_READY: SandboxState
SANDBOX_STATE_FAILED: SandboxState

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QuotaUsage(_message.Message):
    __slots__ = ("quota", "used", "limit")
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    USED_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    quota: str
    used: int
    limit: int
    def __init__(self, quota: _Optional[str] = ..., used: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("name", "usage")
    NAME_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    usage: _containers.RepeatedCompositeFieldContainer[QuotaUsage]
    def __init__(self, name: _Optional[str] = ..., usage: _Optional[_Iterable[_Union[QuotaUsage, _Mapping]]] = ...) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[Tenant]
    def __init__(self, tenants: _Optional[_Iterable[_Union[Tenant, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("kind", "name", "uid", "gid", "groups", "tenant")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    uid: int
    gid: int
    groups: _containers.RepeatedScalarFieldContainer[int]
    tenant: str
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., groups: _Optional[_Iterable[int]] = ..., tenant: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("since",)
    SINCE_FIELD_NUMBER: _ClassVar[int]
    since: int
    def __init__(self, since: _Optional[int] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("seq", "time_ms", "kind", "tenant", "request_id", "sandbox_id", "sandbox_name", "network_id", "network_name", "detail")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_NAME_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time_ms: int
    kind: EventKind
    tenant: str
    request_id: str
    sandbox_id: str
    sandbox_name: str
    network_id: str
    network_name: str
    detail: str
    def __init__(self, seq: _Optional[int] = ..., time_ms: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ..., sandbox_id: _Optional[str] = ..., sandbox_name: _Optional[str] = ..., network_id: _Optional[str] = ..., network_name: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class CheckRequest(_message.Message):
    __slots__ = ("sandbox",)
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    sandbox: str
    def __init__(self, sandbox: _Optional[str] = ...) -> None: ...

class CheckResponse(_message.Message):
    __slots__ = ("differences",)
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    differences: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, differences: _Optional[_Iterable[str]] = ...) -> None: ...

class GarbageCollectRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GarbageCollectResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateNetworkRequest(_message.Message):
    __slots__ = ("name", "driver", "subnet", "gateway", "bridge_name", "mtu", "internal", "icc", "labels", "ipv6_subnet", "ipv6_gateway", "enable_ipv6", "gateway_mode_ipv4", "gateway_mode_ipv6", "enable_ipv4")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_NAME_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    ICC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    IPV6_SUBNET_FIELD_NUMBER: _ClassVar[int]
    IPV6_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    ENABLE_IPV6_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_MODE_IPV4_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_MODE_IPV6_FIELD_NUMBER: _ClassVar[int]
    ENABLE_IPV4_FIELD_NUMBER: _ClassVar[int]
    name: str
    driver: str
    subnet: str
    gateway: str
    bridge_name: str
    mtu: int
    internal: bool
    icc: bool
    labels: _containers.ScalarMap[str, str]
    ipv6_subnet: str
    ipv6_gateway: str
    enable_ipv6: bool
    gateway_mode_ipv4: str
    gateway_mode_ipv6: str
    enable_ipv4: bool
    def __init__(self, name: _Optional[str] = ..., driver: _Optional[str] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., bridge_name: _Optional[str] = ..., mtu: _Optional[int] = ..., internal: _Optional[bool] = ..., icc: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., ipv6_subnet: _Optional[str] = ..., ipv6_gateway: _Optional[str] = ..., enable_ipv6: _Optional[bool] = ..., gateway_mode_ipv4: _Optional[str] = ..., gateway_mode_ipv6: _Optional[str] = ..., enable_ipv4: _Optional[bool] = ...) -> None: ...

class AttachedSandbox(_message.Message):
    __slots__ = ("sandbox_id", "sandbox_name", "interface", "address", "mac_address", "ipv6_address")
    SANDBOX_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_NAME_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    sandbox_id: str
    sandbox_name: str
    interface: str
    address: str
    mac_address: str
    ipv6_address: str
    def __init__(self, sandbox_id: _Optional[str] = ..., sandbox_name: _Optional[str] = ..., interface: _Optional[str] = ..., address: _Optional[str] = ..., mac_address: _Optional[str] = ..., ipv6_address: _Optional[str] = ...) -> None: ...

class Network(_message.Message):
    __slots__ = ("id", "name", "driver", "subnet", "gateway", "bridge_name", "mtu", "internal", "icc", "labels", "sandboxes", "created_at", "default", "tenant", "ipv6_subnet", "ipv6_gateway", "gateway_mode_ipv4", "gateway_mode_ipv6")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    SUBNET_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_NAME_FIELD_NUMBER: _ClassVar[int]
    MTU_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_FIELD_NUMBER: _ClassVar[int]
    ICC_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    SANDBOXES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    IPV6_SUBNET_FIELD_NUMBER: _ClassVar[int]
    IPV6_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_MODE_IPV4_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_MODE_IPV6_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    bridge_name: str
    mtu: int
    internal: bool
    icc: bool
    labels: _containers.ScalarMap[str, str]
    sandboxes: _containers.RepeatedCompositeFieldContainer[AttachedSandbox]
    created_at: int
    default: bool
    tenant: str
    ipv6_subnet: str
    ipv6_gateway: str
    gateway_mode_ipv4: str
    gateway_mode_ipv6: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., driver: _Optional[str] = ..., subnet: _Optional[str] = ..., gateway: _Optional[str] = ..., bridge_name: _Optional[str] = ..., mtu: _Optional[int] = ..., internal: _Optional[bool] = ..., icc: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ..., sandboxes: _Optional[_Iterable[_Union[AttachedSandbox, _Mapping]]] = ..., created_at: _Optional[int] = ..., default: _Optional[bool] = ..., tenant: _Optional[str] = ..., ipv6_subnet: _Optional[str] = ..., ipv6_gateway: _Optional[str] = ..., gateway_mode_ipv4: _Optional[str] = ..., gateway_mode_ipv6: _Optional[str] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class ListNetworksRequest(_message.Message):
    __slots__ = ("label_selector",)
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListNetworksResponse(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[Network]
    def __init__(self, networks: _Optional[_Iterable[_Union[Network, _Mapping]]] = ...) -> None: ...

class DeleteNetworkRequest(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: str
    def __init__(self, network: _Optional[str] = ...) -> None: ...

class DeleteNetworkResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class BridgeMode(_message.Message):
    __slots__ = ("networks",)
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.RepeatedCompositeFieldContainer[NetworkAttachment]
    def __init__(self, networks: _Optional[_Iterable[_Union[NetworkAttachment, _Mapping]]] = ...) -> None: ...

class NetworkAttachment(_message.Message):
    __slots__ = ("network", "ipv4_address", "interface_name", "mac_address", "ipv6_address")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    network: str
    ipv4_address: str
    interface_name: str
    mac_address: str
    ipv6_address: str
    def __init__(self, network: _Optional[str] = ..., ipv4_address: _Optional[str] = ..., interface_name: _Optional[str] = ..., mac_address: _Optional[str] = ..., ipv6_address: _Optional[str] = ...) -> None: ...

class HostMode(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NoneMode(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ContainerMode(_message.Message):
    __slots__ = ("target",)
    TARGET_FIELD_NUMBER: _ClassVar[int]
    target: str
    def __init__(self, target: _Optional[str] = ...) -> None: ...

class CreateSandboxRequest(_message.Message):
    __slots__ = ("name", "labels", "mac_address", "bridge", "host", "none", "container", "netns_path", "publish")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BRIDGE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    name: str
    labels: _containers.ScalarMap[str, str]
    mac_address: str
    bridge: BridgeMode
    host: HostMode
    none: NoneMode
    container: ContainerMode
    netns_path: str
    publish: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., mac_address: _Optional[str] = ..., bridge: _Optional[_Union[BridgeMode, _Mapping]] = ..., host: _Optional[_Union[HostMode, _Mapping]] = ..., none: _Optional[_Union[NoneMode, _Mapping]] = ..., container: _Optional[_Union[ContainerMode, _Mapping]] = ..., netns_path: _Optional[str] = ..., publish: _Optional[_Iterable[str]] = ...) -> None: ...

class PortMapping(_message.Message):
    __slots__ = ("protocol", "host_ip", "host_port", "interface", "container_ip", "container_port")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_IP_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    host_ip: str
    host_port: int
    interface: str
    container_ip: str
    container_port: int
    def __init__(self, protocol: _Optional[str] = ..., host_ip: _Optional[str] = ..., host_port: _Optional[int] = ..., interface: _Optional[str] = ..., container_ip: _Optional[str] = ..., container_port: _Optional[int] = ...) -> None: ...

class Interface(_message.Message):
    __slots__ = ("name", "network_id", "network_name", "mac_address", "address", "gateway", "host_interface", "ipv6_address", "ipv6_gateway")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    NETWORK_NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    HOST_INTERFACE_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    name: str
    network_id: str
    network_name: str
    mac_address: str
    address: str
    gateway: str
    host_interface: str
    ipv6_address: str
    ipv6_gateway: str
    def __init__(self, name: _Optional[str] = ..., network_id: _Optional[str] = ..., network_name: _Optional[str] = ..., mac_address: _Optional[str] = ..., address: _Optional[str] = ..., gateway: _Optional[str] = ..., host_interface: _Optional[str] = ..., ipv6_address: _Optional[str] = ..., ipv6_gateway: _Optional[str] = ...) -> None: ...

class Sandbox(_message.Message):
    __slots__ = ("id", "name", "labels", "mode", "container_target", "netns_path", "netns_owned", "interfaces", "state", "state_reason", "created_at", "ports", "tenant")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_TARGET_FIELD_NUMBER: _ClassVar[int]
    NETNS_PATH_FIELD_NUMBER: _ClassVar[int]
    NETNS_OWNED_FIELD_NUMBER: _ClassVar[int]
    INTERFACES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    labels: _containers.ScalarMap[str, str]
    mode: SandboxMode
    container_target: str
    netns_path: str
    netns_owned: bool
    interfaces: _containers.RepeatedCompositeFieldContainer[Interface]
    state: SandboxState
    state_reason: str
    created_at: int
    ports: _containers.RepeatedCompositeFieldContainer[PortMapping]
    tenant: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., mode: _Optional[_Union[SandboxMode, str]] = ..., container_target: _Optional[str] = ..., netns_path: _Optional[str] = ..., netns_owned: _Optional[bool] = ..., interfaces: _Optional[_Iterable[_Union[Interface, _Mapping]]] = ..., state: _Optional[_Union[SandboxState, str]] = ..., state_reason: _Optional[str] = ..., created_at: _Optional[int] = ..., ports: _Optional[_Iterable[_Union[PortMapping, _Mapping]]] = ..., tenant: _Optional[str] = ...) -> None: ...

class GetSandboxRequest(_message.Message):
    __slots__ = ("sandbox",)
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    sandbox: str
    def __init__(self, sandbox: _Optional[str] = ...) -> None: ...

class ListSandboxesRequest(_message.Message):
    __slots__ = ("label_selector",)
    class LabelSelectorEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    label_selector: _containers.ScalarMap[str, str]
    def __init__(self, label_selector: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListSandboxesResponse(_message.Message):
    __slots__ = ("sandboxes",)
    SANDBOXES_FIELD_NUMBER: _ClassVar[int]
    sandboxes: _containers.RepeatedCompositeFieldContainer[Sandbox]
    def __init__(self, sandboxes: _Optional[_Iterable[_Union[Sandbox, _Mapping]]] = ...) -> None: ...

class DeleteSandboxRequest(_message.Message):
    __slots__ = ("sandbox",)
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    sandbox: str
    def __init__(self, sandbox: _Optional[str] = ...) -> None: ...

class DeleteSandboxResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConnectRequest(_message.Message):
    __slots__ = ("sandbox", "network", "ipv4_address", "publish", "interface_name", "mac_address", "ipv6_address")
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_NAME_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IPV6_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    sandbox: str
    network: str
    ipv4_address: str
    publish: _containers.RepeatedScalarFieldContainer[str]
    interface_name: str
    mac_address: str
    ipv6_address: str
    def __init__(self, sandbox: _Optional[str] = ..., network: _Optional[str] = ..., ipv4_address: _Optional[str] = ..., publish: _Optional[_Iterable[str]] = ..., interface_name: _Optional[str] = ..., mac_address: _Optional[str] = ..., ipv6_address: _Optional[str] = ...) -> None: ...

class DisconnectRequest(_message.Message):
    __slots__ = ("sandbox", "network")
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    sandbox: str
    network: str
    def __init__(self, sandbox: _Optional[str] = ..., network: _Optional[str] = ...) -> None: ...
