"""Least-privilege ACLs from the catalog's principals, granted on a cluster that
authorizes (`tideline topics create` and `kafka.create_topics` do it for their prefix);
what an earlier catalog granted there and this one does not is revoked.

aiokafka's admin client has no ACL calls, so the CreateAcls request (API 30, v1) is
sent through its protocol classes: one request grants every ACL at once, where
Kafka's Java AclCommand would start a JVM per principal and operation.
"""

import asyncio
from dataclasses import dataclass
from enum import IntEnum

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import SecurityDisabled, for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from tideline import catalog
from tideline.settings import Settings


class Resource(IntEnum):  # Kafka's ResourceType
    TOPIC = 2
    GROUP = 3


class Pattern(IntEnum):  # Kafka's PatternType
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):  # Kafka's AclOperation; READ and WRITE imply DESCRIBE
    READ = 3
    WRITE = 4


ALLOW = 3  # AclPermissionType


@dataclass(frozen=True)
class Acl:
    principal: str  # "User:<name>"
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def creation(self) -> tuple[int, str, int, str, str, int, int]:
        return (self.resource, self.name, self.pattern, self.principal, "*", self.operation, ALLOW)


def acls(settings: Settings) -> list[Acl]:
    """What every catalog principal may do under `settings`' topic prefix: read and write
    its topics, and use the consumer groups named after it."""
    prefix = settings.topic_prefix
    found = []
    for principal in catalog.principals().values():
        user = f"User:{principal.name}"
        for operation, names in (
            (Operation.READ, principal.reads),
            (Operation.WRITE, principal.writes),
        ):
            found += [
                Acl(user, Resource.TOPIC, prefix + n, Pattern.LITERAL, operation) for n in names
            ]
        group = f"{prefix}{principal.name}"
        found.append(Acl(user, Resource.GROUP, group, Pattern.PREFIXED, Operation.READ))
    return found


def owned(settings: Settings, acl: Acl) -> bool:
    """Whether `acl` is one the catalog decides under `settings`' prefix: a catalog
    principal's, on a catalog topic or on the principal's groups there (another prefix's
    are not, even where one prefix starts with the other)."""
    prefix, user = settings.topic_prefix, acl.principal.removeprefix("User:")
    if user not in catalog.principals():
        return False
    if acl.resource == Resource.GROUP:
        return acl.name == f"{prefix}{user}"
    return acl.name.removeprefix(prefix) in catalog.topics() and acl.name.startswith(prefix)


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # untyped in aiokafka
    API_KEY = 30

    def __init__(self, grants: list[Acl]) -> None:
        self.grants = grants

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class([acl.creation() for acl in self.grants])


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]  # untyped in aiokafka
    API_KEY = 31

    def __init__(self, revoked: list[Acl]) -> None:
        self.revoked = revoked

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class([acl.creation() for acl in self.revoked])


ANY = 1  # matches every resource type, pattern, operation and permission in a filter


async def grant(client: AIOKafkaAdminClient, settings: Settings) -> bool:
    """Create the catalog's ACLs for `settings`' prefix (existing ones are no error) and
    wait until every broker enforces them; False when the cluster has no authorizer,
    where there is nothing to grant."""
    wanted = acls(settings)
    response = await client._send_request(_CreateAcls(wanted))
    for code, message in response.creation_responses:
        if code == SecurityDisabled.errno:
            return False
        if code != 0:
            raise for_code(code)(f"cannot grant the catalog's ACLs: {message}")
    # What an earlier catalog granted here and this one does not, revoked.
    any_broker = client._client.cluster.brokers()
    found = await _enforced(client, next(iter(any_broker)).nodeId) if any_broker else set()
    stale = [acl for acl in found if owned(settings, acl) and acl not in set(wanted)]
    if stale:
        deleted = await client._send_request(_DeleteAcls(stale))
        for code, message, _ in deleted.filter_responses:
            if code != 0:
                raise for_code(code)(f"cannot revoke an ACL the catalog dropped: {message}")
    # The controller acknowledges first; each broker applies them from the metadata log,
    # and a service started meanwhile would find its topics hidden from it.
    async with asyncio.timeout(30):
        for broker in client._client.cluster.brokers():
            await _until_enforced(client, broker.nodeId, set(wanted), settings)
    return True


async def _until_enforced(
    client: AIOKafkaAdminClient, node: int, wanted: set[Acl], settings: Settings
) -> None:
    while True:
        enforced = {acl for acl in await _enforced(client, node) if owned(settings, acl)}
        if enforced == wanted:
            return
        await asyncio.sleep(0.05)


async def _enforced(client: AIOKafkaAdminClient, node: int) -> set[Acl]:
    every = DescribeAclsRequest(ANY, None, ANY, None, None, ANY, ANY)
    response = await client._send_request(every, node)
    if response.error_code:
        raise for_code(response.error_code)(response.error_message)
    return {
        Acl(principal, Resource(kind), name, Pattern(pattern), Operation(operation))
        for kind, name, pattern, entries in response.resources
        if kind in iter(Resource) and pattern in iter(Pattern)
        for principal, _, operation, permission in entries
        if permission == ALLOW and operation in iter(Operation)
    }
