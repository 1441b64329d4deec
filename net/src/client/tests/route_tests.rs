//! The routing decision.

use crate::client::route::{partition_shard, query_partition_value, Route, Router};
use crate::client::tests::server::{get, key_in_partition, key_item, two_shard_table};
use crate::codec::*;
use crate::model::{KeyValue, Value};

fn router(home_shard: u32, shard_aware: bool) -> Router {
    let hello = HelloOk {
        version: 1,
        shard: home_shard,
        shard_addrs: vec!["a:1".to_owned(), "b:2".to_owned()],
    };
    Router::new(&hello, shard_aware, 1000)
}

fn query(condition: &str, names: &[(&str, &str)], values: &[(&str, &str)]) -> Query {
    Query {
        table: "t".to_owned(),
        key_condition: condition.to_owned(),
        filter: None,
        projection: None,
        args: ExprArgs {
            names: names
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), Value::S(v.to_string())))
                .collect(),
        },
        forward: true,
        limit: None,
        start_key: None,
        consistent: false,
    }
}

#[test]
fn item_requests_go_to_the_owning_shard_and_the_rest_to_the_shared_connection() {
    let mut router = router(0, true);
    let far = key_in_partition(1);
    let near = key_in_partition(0);
    assert_eq!(
        router.route(&get("t", &far), 0),
        Route::Describe("t".to_owned())
    );
    router.learn_table(&two_shard_table());
    assert_eq!(router.route(&get("t", &far), 0), Route::Shard(1));
    // The home shard's partition: the shared connection already reaches it.
    assert_eq!(router.route(&get("t", &near), 0), Route::Shared);
    let put = Request::PutItem(PutItem {
        table: "t".to_owned(),
        item: key_item(&far),
        condition: None,
        args: ExprArgs::default(),
        return_values: ReturnValues::None,
    });
    assert_eq!(router.route(&put, 0), Route::Shard(1));
    let scan = Request::Scan(Scan {
        table: "t".to_owned(),
        filter: None,
        projection: None,
        args: ExprArgs::default(),
        limit: None,
        start_key: None,
        segment: 0,
        total_segments: 1,
        consistent: false,
    });
    assert_eq!(router.route(&scan, 0), Route::Shared);
    assert_eq!(
        router.route(&Request::DescribeTable { table: "t".into() }, 0),
        Route::Shared
    );
    // No partition key attribute, or a non-key type: the node sorts it out.
    let mut missing = get("t", &far);
    if let Request::GetItem(g) = &mut missing {
        g.key.clear();
    }
    assert_eq!(router.route(&missing, 0), Route::Shared);
    let mut bad = get("t", &far);
    if let Request::GetItem(g) = &mut bad {
        g.key.insert("pk".to_owned(), Value::Bool(true));
    }
    assert_eq!(router.route(&bad, 0), Route::Shared);
    router.forget_table("t");
    assert_eq!(
        router.route(&get("t", &far), 0),
        Route::Describe("t".to_owned())
    );
}

#[test]
fn a_shard_that_refused_a_connection_is_skipped_until_its_retry_time() {
    let mut router = router(0, true);
    router.learn_table(&two_shard_table());
    let far = get("t", &key_in_partition(1));
    router.shard_failed(1, 5_000);
    assert_eq!(router.route(&far, 5_999), Route::Shared);
    assert_eq!(router.route(&far, 6_000), Route::Shard(1));
}

#[test]
fn without_shard_awareness_everything_takes_the_shared_connection() {
    let mut router = router(0, false);
    router.learn_table(&two_shard_table());
    assert_eq!(
        router.route(&get("t", &key_in_partition(1)), 0),
        Route::Shared
    );
}

#[test]
fn a_shard_outside_the_address_list_takes_the_shared_connection() {
    let mut router = router(0, true);
    let mut table = two_shard_table();
    table.partitions[1].shard = 7;
    router.learn_table(&table);
    assert_eq!(
        router.route(&get("t", &key_in_partition(1)), 0),
        Route::Shared
    );
}

#[test]
fn query_partition_keys_are_read_from_the_key_condition() {
    let s = |v: &str| Some(KeyValue::S(v.to_owned()));
    let pk = "pk";
    assert_eq!(
        query_partition_value(&query("pk = :v", &[], &[(":v", "x")]), pk),
        s("x")
    );
    assert_eq!(
        query_partition_value(&query("pk=:v", &[], &[(":v", "x")]), pk),
        s("x")
    );
    assert_eq!(
        query_partition_value(
            &query(
                "#s BETWEEN :a AND :b and #p = :v",
                &[("#p", "pk"), ("#s", "sk")],
                &[(":a", "1"), (":b", "2"), (":v", "x")]
            ),
            pk
        ),
        s("x")
    );
    assert_eq!(
        query_partition_value(&query(":v = pk", &[], &[(":v", "y")]), pk),
        s("y")
    );
    assert_eq!(
        query_partition_value(&query("(pk = :v) AND sk >= :s", &[], &[(":v", "z")]), pk),
        s("z")
    );
    // Not the partition key, not an equality, or an unbound placeholder.
    assert_eq!(
        query_partition_value(&query("sk = :v", &[], &[(":v", "x")]), pk),
        None
    );
    assert_eq!(
        query_partition_value(&query("pk >= :v", &[], &[(":v", "x")]), pk),
        None
    );
    assert_eq!(
        query_partition_value(&query("pk = :w", &[], &[(":v", "x")]), pk),
        None
    );
    let mut router = router(0, true);
    router.learn_table(&two_shard_table());
    let far = key_in_partition(1);
    let q = Request::Query(query("pk = :v", &[], &[(":v", &far)]));
    assert_eq!(router.route(&q, 0), Route::Shard(1));
}

#[test]
fn uneven_partition_maps_are_searched_by_range() {
    let partitions = [
        PartitionInfo {
            hash_low: 0,
            hash_high: 9,
            shard: 3,
        },
        PartitionInfo {
            hash_low: 10,
            hash_high: u64::MAX,
            shard: 4,
        },
    ];
    assert_eq!(partition_shard(&partitions, 0), Some(3));
    assert_eq!(partition_shard(&partitions, 9), Some(3));
    assert_eq!(partition_shard(&partitions, 10), Some(4));
    assert_eq!(partition_shard(&partitions, u64::MAX), Some(4));
    assert_eq!(partition_shard(&[], 5), None);
    // A gap in the map: no owner known.
    let gap = [PartitionInfo {
        hash_low: 10,
        hash_high: 20,
        shard: 1,
    }];
    assert_eq!(partition_shard(&gap, 5), None);
    assert_eq!(partition_shard(&gap, 21), None);
}
