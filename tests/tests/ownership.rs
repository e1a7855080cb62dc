//! Exact ownership: netexec changes or deletes a link only for the object
//! whose tag it carries. A network asking for another sandbox's veth name as
//! its bridge used to fail with "not a bridge" and then delete that veth in
//! its rollback (any ctnet-tagged link was "ours"); an operator's untagged
//! bridge with ctnet's prefix was adopted by `network create --bridge-name`
//! and deleted by `network rm`.
use ctnet_tests::{ip_of, net, pb, req, Stack};
use tonic::Code;

#[tokio::test]
async fn a_network_cannot_take_another_sandboxs_veth() {
    let mut st = Stack::start().await;
    let victim = st.create(req::bridge("victim", &[])).await;
    let peer = st.create(req::bridge("peer", &[])).await;
    let veth = victim.interfaces[0].host_interface.clone();
    let steal = pb::CreateNetworkRequest {
        bridge_name: Some(veth.clone()),
        ..req::network("thief", "198.19.61.0/24")
    };
    let err = st.client.networks.create_network(steal).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let link = net::link(&st.host, &veth).expect("the victim's veth survives");
    ctnet_tests::assert_tag(&link["ifalias"], "sb", &victim.id);
    assert!(net::ping(&Stack::pin_of(&peer), ip_of(&victim, "eth0"), 3), "and passes traffic");
    let nets = st.client.networks.list_networks(pb::ListNetworksRequest::default()).await.unwrap();
    assert!(nets.into_inner().networks.iter().all(|n| n.name != "thief"), "no record kept");
    st.delete("victim").await;
    st.delete("peer").await;
    st.finish().await;
}

#[tokio::test]
async fn an_untagged_host_bridge_is_neither_adopted_nor_deleted() {
    let mut st = Stack::start().await;
    net::ip_do(&st.host, &["link", "add", "ctoperator0", "type", "bridge"]);
    let adopt = pb::CreateNetworkRequest {
        bridge_name: Some("ctoperator0".into()),
        ..req::network("adopter", "198.19.62.0/24")
    };
    let err = st.client.networks.create_network(adopt).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    let link = net::link(&st.host, "ctoperator0").expect("the operator's bridge stays");
    assert!(link.get("ifalias").is_none(), "and stays untagged: {link}");
    assert!(net::addresses(&st.host, "ctoperator0").is_empty(), "no address was added");
    // GC does not take it either: it carries no tag of ours.
    let removed =
        st.client.maintenance.garbage_collect(pb::GarbageCollectRequest {}).await.unwrap();
    assert!(removed.into_inner().removed.is_empty());
    assert!(net::link(&st.host, "ctoperator0").is_some());
    net::ip_do(&st.host, &["link", "del", "ctoperator0"]);
    st.finish().await;
}
