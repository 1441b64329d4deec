//! The glommio client against the in-test server.

use std::time::Duration;

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};

use crate::client::tests::server::*;
use crate::client::{AsyncClient, ClientError, ClientOptions};

fn executor() -> LocalExecutor {
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .make()
        .unwrap()
}

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

#[test]
fn async_pipelined_answers_out_of_order_are_matched_by_request_id() {
    let server = TestServer::start("a", 0);
    executor().run(async {
        let client = AsyncClient::connect(&server.addr, options()).await.unwrap();
        let mut pending = Vec::new();
        for key in ["k1", "k2", "k3"] {
            pending.push((key, client.send(get("hold", key)).await.unwrap()));
        }
        for (key, pending) in pending {
            assert_eq!(served_key(&pending.wait().await.unwrap()), key_item(key));
        }
    });
}

#[test]
fn async_a_late_answer_times_out_and_the_connection_stays_usable() {
    let server = TestServer::start("a", 0);
    executor().run(async {
        let options = ClientOptions {
            request_timeout: Duration::from_millis(100),
            ..options()
        };
        let client = AsyncClient::connect(&server.addr, options).await.unwrap();
        let sent = std::time::Instant::now();
        let result = client.call(get("slow", "k1")).await;
        let waited = sent.elapsed();
        let timeout = Duration::from_millis(100);
        assert!(
            matches!(result, Err(ClientError::Timeout { after }) if after == timeout),
            "{result:?}"
        );
        // Swept, not timed one by one: never early, late by at most a sweep tick (10 ms
        // here) plus scheduling.
        assert!(
            waited >= Duration::from_millis(100),
            "timed out after {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(2),
            "timed out after {waited:?}"
        );
        glommio::timer::sleep(Duration::from_millis(400)).await;
        let response = client.call(get("t", "k2")).await.unwrap();
        assert_eq!(served_key(&response), key_item("k2"));
    });
    assert_eq!(server.connections(), 1);
}

#[test]
fn async_a_dropped_connection_fails_in_flight_requests_and_reconnects() {
    let server = TestServer::start("a", 0);
    executor().run(async {
        let client = AsyncClient::connect(&server.addr, options()).await.unwrap();
        let held = client.send(get("hold", "k1")).await.unwrap();
        let dropped = client.call(get("drop", "k2")).await;
        assert!(
            matches!(dropped, Err(ClientError::ConnectionLost { .. })),
            "{dropped:?}"
        );
        let held = held.wait().await;
        assert!(
            matches!(held, Err(ClientError::ConnectionLost { .. })),
            "{held:?}"
        );
        let response = client.call(get("t", "k3")).await.unwrap();
        assert_eq!(served_key(&response), key_item("k3"));
    });
    assert_eq!(server.connections(), 2);
}

#[test]
fn async_item_requests_go_to_the_owning_shard() {
    let a = TestServer::start("a", 0);
    let b = TestServer::start("b", 1);
    for server in [&a, &b] {
        *server.state.shard_addrs.lock().unwrap() = vec![a.addr.clone(), b.addr.clone()];
        *server.state.table.lock().unwrap() = Some(two_shard_table());
    }
    executor().run(async {
        let client = AsyncClient::connect(&a.addr, options()).await.unwrap();
        let far = key_in_partition(1);
        let near = key_in_partition(0);
        assert_eq!(served_by(&client.call(get("t", &far)).await.unwrap()), "b");
        assert_eq!(served_by(&client.call(get("t", &near)).await.unwrap()), "a");
        let table = client.describe_table("t").await.unwrap();
        assert_eq!(table.partitions.len(), 2);
    });
    assert_eq!(b.connections(), 1);
}
