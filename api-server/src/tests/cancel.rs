//! Cancellation at every await point that reaches the executor, both kinds:
//! (a) the RPC future dropped while the operation task goes on, and (b) the
//! operation task itself dropped (as at runtime shutdown), then one
//! periodic reconciliation. Outcome: no held claim, no record in a
//! transient phase, kernel and records agree, and the same request again
//! succeeds or is told why.
use super::faults::Scenario;
use super::*;
use crate::fake::{Fault, Op};

/// How many executor calls the scenario makes, counted on a scratch run.
async fn calls_of(s: Scenario) -> usize {
    let env = Env::new().await;
    s.setup(&env).await;
    let before = env.fake.calls().len();
    s.run(&env, false).await.unwrap_or_else(|e| panic!("{s:?} without faults: {e}"));
    // Work acknowledged early (a delete's release) finishes in the background.
    env.idle(false).await;
    env.fake.calls().len() - before
}

/// Drops the operation (or only its caller, with `direct` false) when the
/// `nth` executor call from now reaches a hang.
async fn cut(s: Scenario, nth: usize, hang: Fault, direct: bool) {
    let env = Env::new().await;
    s.setup(&env).await;
    env.fake.inject(None, nth, hang);
    tokio::select! {
        // Answered first: the call is one of the background's (a delete's
        // release), which must reach it still.
        out = s.run(&env, direct) => {
            assert!(out.is_ok(), "{s:?}: call {nth} never hung ({out:?})");
            env.fake.hung(1).await;
        }
        () = env.fake.hung(1) => {}
    }
    env.settle().await;
    env.agree().await;
    s.retry(&env).await;
}

async fn every_await_point(s: Scenario, direct: bool) {
    let n = calls_of(s).await;
    assert!(n > 0, "{s:?} makes no executor call");
    for nth in 1..=n {
        for hang in [Fault::Hang, Fault::HangAfter] {
            cut(s, nth, hang, direct).await;
        }
    }
}

macro_rules! cancel_tests {
    ($($name:ident: $scenario:ident;)*) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test]
                async fn caller_gives_up_at_every_await_point() {
                    every_await_point(Scenario::$scenario, false).await;
                }
                #[tokio::test]
                async fn task_dropped_at_every_await_point() {
                    every_await_point(Scenario::$scenario, true).await;
                }
            }
        )*
    };
}

cancel_tests! {
    create_bridge: CreateBridge;
    create_two_networks: CreateTwoNetworks;
    create_none_external: CreateNoneExternal;
    create_none_owned: CreateNoneOwned;
    delete_sandbox: DeleteSandbox;
    connect: Connect;
    disconnect: Disconnect;
    create_network: CreateNetwork;
    delete_network: DeleteNetwork;
}

/// A caller that gives up does not stop the operation: it completes.
#[tokio::test]
async fn a_create_whose_caller_gave_up_completes() {
    let env = Env::new().await;
    env.fake.inject(Some(Op::Attach), 1, Fault::Hang);
    tokio::select! {
        _ = env.bridge("web", &["8080:80"]) => panic!("attach never hung"),
        () = env.fake.hung(1) => {}
    }
    assert_eq!(env.ops.claims().count(), 1, "the operation goes on");
    env.settle().await;
    let st = env.ops.lock().await;
    let web = st.sandboxes.values().find(|s| s.display_name() == "web").expect("created");
    assert_eq!(web.phase, Phase::Ready);
    drop(st);
    env.agree().await;
}

/// Reconciliation, periodic or full, run while creates hang in the executor
/// undoes none of them.
#[tokio::test]
async fn reconciliation_while_creates_hang_undoes_nothing() {
    let env = Arc::new(Env::new().await);
    for n in 1..=3 {
        env.fake.inject(Some(Op::Attach), n, Fault::Hang);
    }
    let mut tasks = Vec::new();
    for i in 0..3 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move { env.bridge(&format!("web{i}"), &[]).await }));
    }
    env.fake.hung(3).await;
    env.ops.finish_interrupted().await.unwrap();
    env.ops.reconcile().await.unwrap();
    assert_eq!(env.fake.kernel().netns.len(), 3, "their namespaces survive");
    env.fake.release();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().phase, Phase::Ready);
    }
    env.settle().await;
    env.agree().await;
    assert_eq!(env.ops.lock().await.sandboxes.len(), 3);
}

/// Two operations on one resource: the second is told it is busy, and
/// nothing changes for it.
#[tokio::test]
async fn claims_conflict_between_parallel_requests() {
    let env = Arc::new(Env::new().await);
    env.network("n2", "198.19.2.0/24").await.unwrap();
    env.bridge("web", &[]).await.unwrap();
    env.fake.inject(Some(Op::Attach), 1, Fault::Hang);
    let first = {
        let env = env.clone();
        tokio::spawn(async move { env.connect("web", "n2", &[]).await.map(drop) })
    };
    env.fake.hung(1).await;
    let second = env.delete("web").await.unwrap_err();
    assert!(matches!(second, crate::error::Error::Conflict(_)), "{second}");
    env.fake.release();
    first.await.unwrap().unwrap();
    env.settle().await;
    env.agree().await;
    assert_eq!(
        env.ops.lock().await.sandboxes.values().map(|s| s.endpoints.len()).sum::<usize>(),
        2
    );
}

/// A create and a delete racing on one name: the name is taken once.
#[tokio::test]
async fn parallel_creates_of_one_name_take_it_once() {
    let env = Arc::new(Env::new().await);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move { env.bridge("web", &["8080:80"]).await }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert!(matches!(e, crate::error::Error::AlreadyExists(_)), "{e}"),
        }
    }
    assert_eq!(ok, 1);
    env.agree().await;
}

/// One firewall truth: a full rebuild whose table was computed before a
/// delete must not land after the delete's delta and bring its port back.
/// The rebuild is held at netexec while the delete runs as far as it can;
/// then the rebuild goes on.
#[tokio::test]
async fn a_stale_rebuild_never_brings_back_a_deleted_port() {
    let env = Arc::new(Env::new().await);
    env.bridge("web", &["8080:80"]).await.unwrap();
    env.fake.inject(Some(Op::SyncFirewall), 1, Fault::Hang);
    let rebuild = {
        let env = env.clone();
        tokio::spawn(async move { env.ops.garbage_collect().await })
    };
    env.fake.hung(1).await;
    let updates = env.fake.count(Op::UpdateFirewall);
    let delete = {
        let env = env.clone();
        tokio::spawn(async move { env.delete("web").await })
    };
    // The delete's delta may not reach netexec before the rebuild ended: it
    // waits behind it (the old code applied it here, and the stale rebuild
    // then re-added the port).
    for _ in 0..200 {
        if env.fake.count(Op::UpdateFirewall) > updates {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_eq!(env.fake.count(Op::UpdateFirewall), updates, "a delta ran during the rebuild");
    env.fake.release();
    rebuild.await.unwrap().unwrap();
    delete.await.unwrap().unwrap();
    env.settle().await;
    assert!(env.fake.kernel().fw_ports.is_empty(), "the deleted port came back");
    env.agree().await;
}

/// A reconciliation judges each sandbox by an inventory taken before it
/// claimed it; a create finished in between was marked failed ("its
/// network namespace is gone"), as the three-client chaos test found.
#[tokio::test]
async fn a_create_finished_during_reconciliation_is_not_marked_failed() {
    let env = Env::new().await;
    // adopt_links takes the first inventory; the second is the one sandboxes
    // are judged by: taken, then held while a create runs to the end.
    env.fake.inject(Some(Op::Inventory), 2, Fault::HangAfter);
    let ops = env.ops.clone();
    let reconciling = tokio::spawn(async move { ops.reconcile().await });
    env.fake.hung(1).await;
    let late = env.bridge("late", &["8090:80"]).await.unwrap();
    env.fake.release();
    reconciling.await.unwrap().unwrap();
    let phase = env.ops.lock().await.sandboxes[&late.id].phase.clone();
    assert_eq!(phase, Phase::Ready);
    env.agree().await;
}
