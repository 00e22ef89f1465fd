"""The functional tier's Nova stand-in speaks enough Nova for openstacksdk and Cyborg."""

from __future__ import annotations

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1.token_endpoint import Token
from openstack import connection
from openstack import exceptions as sdk_exc
from wsgi_intercept import interceptor

from tests.functional.nova_standin import NovaStandIn

URL = "http://nova-standin.test"


@pytest.fixture
def nova() -> NovaStandIn:
    standin = NovaStandIn()
    with interceptor.RequestsInterceptor(lambda: standin, url=URL):
        yield standin


def _conn() -> connection.Connection:
    sess = ks_session.Session(auth=Token(endpoint=URL + "/v2.1", token="admin"))
    return connection.Connection(session=sess, compute_endpoint_override=URL + "/v2.1")


def test_flavor_and_extra_specs_through_openstacksdk(nova: NovaStandIn) -> None:
    conn = _conn()
    flavor = conn.compute.create_flavor(name="dpdk.small", ram=2048, vcpus=2, disk=10)
    assert conn.compute.find_flavor("dpdk.small").id == flavor.id
    conn.compute.create_flavor_extra_specs(flavor, {"accel:device_profile": "dpdk",
                                                    "hw:mem_page_size": "1GB"})
    conn.compute.update_flavor_extra_specs_property(flavor, "hw:cpu_policy", "dedicated")
    specs = conn.compute.fetch_flavor_extra_specs(flavor).extra_specs
    assert specs == {"accel:device_profile": "dpdk", "hw:cpu_policy": "dedicated",
                     "hw:mem_page_size": "1GB"}
    assert conn.compute.get_flavor_extra_specs_property(flavor, "hw:cpu_policy") == "dedicated"
    conn.compute.delete_flavor_extra_specs_property(flavor, "hw:mem_page_size")
    assert set(nova.flavors[flavor.id].extra_specs) == {"accel:device_profile",
                                                        "hw:cpu_policy"}
    assert [f.name for f in conn.compute.flavors(details=True)] == ["dpdk.small"]
    with pytest.raises(sdk_exc.ConflictException):
        conn.compute.create_flavor(name="dpdk.small", ram=1, vcpus=1, disk=0)
    conn.compute.delete_flavor(flavor)
    assert nova.flavors == {}
    with pytest.raises(sdk_exc.NotFoundException):
        conn.compute.get_flavor(flavor.id)


def test_server_external_events_are_recorded_and_validated(nova: NovaStandIn) -> None:
    sess = ks_session.Session(auth=Token(endpoint=URL + "/v2.1", token="admin"))
    event = {"name": "accelerator-request-bound", "server_uuid": "5f1c", "tag": "arq-1",
             "status": "completed"}
    answer = sess.post(URL + "/v2.1/os-server-external-events", json={"events": [event]})
    assert answer.status_code == 200
    assert answer.json() == {"events": [{**event, "code": 200}]}
    assert nova.events == [{**event, "code": 200}]
    bad = sess.post(URL + "/v2.1/os-server-external-events", raise_exc=False,
                    json={"events": [{**event, "name": "no-such-event"}]})
    assert bad.status_code == 400
    assert len(nova.events) == 1


def test_microversion_out_of_range_is_refused(nova: NovaStandIn) -> None:
    sess = ks_session.Session(auth=Token(endpoint=URL + "/v2.1", token="admin"))
    ok = sess.get(URL + "/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.82"})
    assert ok.headers["OpenStack-API-Version"] == "compute 2.82"
    refused = sess.get(URL + "/v2.1/flavors", raise_exc=False,
                       headers={"OpenStack-API-Version": "compute 3.0"})
    assert refused.status_code == 406
