//! The blocking client against the in-test server.

use std::time::Duration;

use crate::client::tests::server::*;
use crate::client::{Client, ClientError, ClientOptions};
use crate::codec::*;
use crate::model::{KeyAttribute, KeySchema, KeyType};

fn options() -> ClientOptions {
    ClientOptions {
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

#[test]
fn connect_says_hello_and_learns_the_shard_addresses() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    assert_eq!(client.shard_addrs(), vec![server.addr.clone()]);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.requests(), 1, "just the Hello");
}

#[test]
fn pipelined_answers_out_of_order_are_matched_by_request_id() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    // The server holds three requests and answers them in reverse order.
    let pending: Vec<_> = ["k1", "k2", "k3"]
        .iter()
        .map(|k| (k, client.send(get("hold", k)).unwrap()))
        .collect();
    let ids: Vec<_> = pending.iter().map(|(_, p)| p.request_id()).collect();
    // Distinct and ascending (the router's DescribeTable requests take ids in between).
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for (key, pending) in pending {
        let response = pending.wait().unwrap();
        assert_eq!(served_key(&response), key_item(key));
    }
}

#[test]
fn a_late_answer_times_out_and_does_not_answer_the_next_request() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(
        &server.addr,
        ClientOptions {
            request_timeout: Duration::from_millis(100),
            ..options()
        },
    )
    .unwrap();
    let result = client.call(get("slow", "k1"));
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
    // Let the late answer to k1 arrive (and be dropped); the connection stays usable and
    // the next answer is k2's own.
    std::thread::sleep(Duration::from_millis(400));
    let response = client.call(get("t", "k2")).unwrap();
    assert_eq!(served_key(&response), key_item("k2"));
    assert_eq!(server.connections(), 1);
}

#[test]
fn a_dropped_connection_fails_everything_in_flight_and_the_next_call_reconnects() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    let held = client.send(get("hold", "k1")).unwrap();
    let dropped = client.call(get("drop", "k2"));
    assert!(
        matches!(dropped, Err(ClientError::ConnectionLost { .. })),
        "{dropped:?}"
    );
    let held = held.wait();
    assert!(
        matches!(held, Err(ClientError::ConnectionLost { .. })),
        "{held:?}"
    );
    assert_eq!(server.connections(), 1);
    let response = client.call(get("t", "k3")).unwrap();
    assert_eq!(served_key(&response), key_item("k3"));
    assert_eq!(server.connections(), 2, "one new connection");
}

#[test]
fn typed_calls_turn_errors_and_wrong_answers_into_client_errors() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    match client.describe_table("missing") {
        Err(ClientError::Server(error)) => {
            assert_eq!(error.code, ErrorCode::ResourceNotFound);
            assert!(!error.retryable);
        }
        other => panic!("{other:?}"),
    }
    let wrong = client.describe_table("wrong");
    assert!(matches!(wrong, Err(ClientError::Protocol(_))), "{wrong:?}");
    let created = client
        .create_table(CreateTable {
            table: "new".to_owned(),
            schema: KeySchema::partition_only(KeyAttribute::new("pk", KeyType::S)),
            partitions: None,
        })
        .unwrap();
    assert_eq!(created.table, "new");
    let item = client
        .get_item(match get("t", "k") {
            Request::GetItem(g) => g,
            _ => unreachable!(),
        })
        .unwrap()
        .unwrap();
    assert!(item.contains_key("server"));
}

#[test]
fn item_requests_go_to_the_owning_shard_and_fall_back_when_it_is_unreachable() {
    let a = TestServer::start("a", 0);
    let b = TestServer::start("b", 1);
    for server in [&a, &b] {
        *server.state.shard_addrs.lock().unwrap() = vec![a.addr.clone(), b.addr.clone()];
        *server.state.table.lock().unwrap() = Some(two_shard_table());
    }
    let client = Client::connect(&a.addr, options()).unwrap();
    let far = key_in_partition(1);
    let near = key_in_partition(0);
    assert_eq!(served_by(&client.call(get("t", &far)).unwrap()), "b");
    assert_eq!(served_by(&client.call(get("t", &near)).unwrap()), "a");
    assert_eq!(served_by(&client.call(get("t", &far)).unwrap()), "b");
    assert_eq!(b.connections(), 1, "the shard connection is reused");

    // Not shard-aware: everything through a.
    let plain = Client::connect(
        &a.addr,
        ClientOptions {
            shard_aware: false,
            ..options()
        },
    )
    .unwrap();
    assert_eq!(served_by(&plain.call(get("t", &far)).unwrap()), "a");

    // Shard 1 unreachable: the shared connection takes its requests.
    *a.state.shard_addrs.lock().unwrap() = vec![a.addr.clone(), dead_addr()];
    let client = Client::connect(&a.addr, options()).unwrap();
    assert_eq!(served_by(&client.call(get("t", &far)).unwrap()), "a");
}

#[test]
fn a_request_over_the_frame_limit_is_refused_before_sending() {
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    let huge = Request::PutItem(PutItem {
        table: "t".to_owned(),
        item: crate::model::Item::from([(
            "b".to_owned(),
            crate::model::Value::B(vec![0; FRAME_BODY_BYTES_MAX as usize]),
        )]),
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    });
    let result = client.send(huge);
    assert!(
        matches!(result, Err(ClientError::RequestTooLarge { .. })),
        "{:?}",
        result.err()
    );
    let response = client.call(get("t", "k")).unwrap();
    assert_eq!(served_key(&response), key_item("k"));
}

#[test]
fn a_client_is_shared_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
    let server = TestServer::start("a", 0);
    let client = Client::connect(&server.addr, options()).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let client = &client;
            scope.spawn(move || {
                for i in 0..50 {
                    let key = format!("t{t}-{i}");
                    let response = client.call(get("t", &key)).unwrap();
                    assert_eq!(served_key(&response), key_item(&key));
                }
            });
        }
    });
}
