"""Who may do what on a secured cluster: the catalog's principals, the ACLs they become,
the local stack's secrets and how a client finds its own, without a broker (the broker's
side is tests/integration/test_access.py)."""

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from tideline import access, catalog, dlq, schema_store
from tideline.settings import Settings

import services
from ops.stack import security

PLUMBING = {dlq.TOPIC.name, schema_store.TOPIC.name}  # what the runner writes for every service


@pytest.mark.parametrize("name", services.NAMES + services.OPTIONAL)
def test_each_service_is_granted_what_it_declares_and_no_more(name: str) -> None:
    declared = services.declared(name)
    granted = catalog.principals()[name]
    produces = {t.name for t in declared.produces}
    read = {t.name for t in (*declared.consumes, *declared.reads)} | {schema_store.TOPIC.name}
    assert set(granted.writes) == produces | PLUMBING
    assert read <= set(granted.reads)
    assert set(granted.reads) <= read | produces  # besides, only what it writes (restores)


def test_only_the_registry_writes_models_and_the_outside_roles_are_narrow() -> None:
    writers = {
        topic: sorted(p.name for p in catalog.principals().values() if topic in p.writes)
        for topic in catalog.topics()
    }
    assert writers["models.updated"] == writers["models.artifacts"] == ["registry"]
    assert writers["models.candidates"] == writers["trainer.status"] == ["trainer"]
    assert writers["monitor.drift"] == writers["monitor.metrics"] == ["monitor"]
    principals = catalog.principals()
    assert set(principals["producer"].writes) == {"events.raw", "labels.raw"}
    assert principals["producer"].reads == ()
    assert principals["subscriber"].writes == ()
    assert set(principals["subscriber"].reads) == {"models.updated", "models.artifacts"}
    assert set(principals["ops"].writes) == {"registry.commands", "training.requests"}


def test_acls_name_the_prefixed_topics_and_each_principal_s_own_groups() -> None:
    found = access.acls(Settings(topic_prefix="p."))
    registry = {
        (a.resource, a.name, a.pattern, a.operation)
        for a in found
        if a.principal == "User:registry"
    }
    topic, group = access.Resource.TOPIC, access.Resource.GROUP
    literal, prefixed = access.Pattern.LITERAL, access.Pattern.PREFIXED
    assert (topic, "p.models.updated", literal, access.Operation.WRITE) in registry
    assert (group, "p.registry", prefixed, access.Operation.READ) in registry
    writes = {a.name for a in found if a.operation == access.Operation.WRITE}
    assert all(name.startswith("p.") for name in writes)
    subscriber = [a for a in found if a.principal == "User:subscriber"]
    assert access.Operation.WRITE not in {a.operation for a in subscriber}


def test_the_stack_s_secrets_are_the_user_s_alone_and_each_client_finds_its_own(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="localhost:19092")
    secrets = security.make(settings)
    assert security.make(settings) == secrets  # made once: a second start keeps them
    for folder in (tmp_path / "credentials", tmp_path / "tls"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.iterdir())
    names = {f.stem for f in (tmp_path / "credentials").glob("*.env")}
    assert names == set(security.principals()) == {"broker", "admin", *catalog.principals()}
    passwords = {secrets.password(p) for p in names}
    assert len(passwords) == len(names)  # one each

    cli = Settings(home=tmp_path)
    assert (cli.kafka_security_protocol, cli.kafka_sasl_username) == ("SASL_SSL", "admin")
    serving = Settings(home=tmp_path, kafka_principal="serving")
    assert serving.kafka_sasl_password is not None
    assert serving.kafka_sasl_password.get_secret_value() == secrets.password("serving")
    assert serving.kafka_ssl_cafile == secrets.ca
    assert serving.redis_username == "serving"
    assert Settings(home=tmp_path, kafka_principal="ingest").redis_username is None
    users = secrets.redis_users.read_text().splitlines()
    assert users[0].startswith("user default on >")  # a password no one is given
    assert [u.split()[1] for u in users[1:]] == ["admin", "featurestore", "serving"]
    assert "+get +mget +ping" in users[3]
    assert secrets.redis_options() == ["--aclfile", str(secrets.redis_users)]
    explicit = Settings(home=tmp_path, kafka_security_protocol="PLAINTEXT")
    assert explicit.kafka_sasl_username is None  # what a process is told wins over the home
    with pytest.raises(ValueError, match="no credentials for principal 'servng'"):
        Settings(home=tmp_path, kafka_principal="servng")

    ca = x509.load_pem_x509_certificate(secrets.ca.read_bytes())
    key, broker, chain = pkcs12.load_key_and_certificates(
        secrets.keystore.read_bytes(), secrets.keystore_password.encode()
    )
    assert key is not None
    assert broker is not None
    assert chain == [ca]
    broker.verify_directly_issued_by(ca)
    names_in = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names_in.get_values_for_type(x509.DNSName)


def test_client_configurations_for_java_and_kcat_carry_the_principal(tmp_path: Path) -> None:
    secrets = security.make(Settings(home=tmp_path))
    java = security.client_config(secrets, "producer", "localhost:9092", "java")
    assert "security.protocol=SASL_SSL" in java
    assert f"ssl.truststore.location={secrets.ca}" in java
    assert any('username="producer"' in line for line in java)
    kcat = security.client_config(secrets, "producer", "localhost:9092", "librdkafka")
    assert f"sasl.password={secrets.password('producer')}" in kcat
    with pytest.raises(ValueError, match="no credentials"):
        security.client_config(secrets, "mallory", "localhost:9092", "env")


def test_only_the_prefix_s_own_grants_are_the_catalog_s_to_revoke() -> None:
    settings = Settings(topic_prefix="p.")
    topic, group = access.Resource.TOPIC, access.Resource.GROUP
    literal, prefixed = access.Pattern.LITERAL, access.Pattern.PREFIXED
    write = access.Operation.WRITE

    def acl(principal: str, resource: access.Resource, name: str) -> access.Acl:
        pattern = prefixed if resource == group else literal
        return access.Acl(f"User:{principal}", resource, name, pattern, write)

    assert access.owned(settings, acl("subscriber", topic, "p.models.updated"))
    assert access.owned(settings, acl("serving", group, "p.serving"))
    assert not access.owned(settings, acl("subscriber", topic, "p.v2.models.updated"))  # p.v2.'s
    assert not access.owned(settings, acl("subscriber", topic, "q.models.updated"))
    assert not access.owned(settings, acl("someone", topic, "p.models.updated"))  # not ours
    assert not access.owned(settings, acl("serving", group, "p.serving.other"))
