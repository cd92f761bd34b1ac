//! The PostgreSQL connection pool at its smallest: `max_connections` sizes everything a node opens,
//! so a node given one or two connections still serves every kind of request (the connections that
//! one-statement reads share are only taken from a pool large enough to spare them).

mod common;

use common::pg::PgCluster;
use common::{uid, Http, Server};
use serde_json::json;

fn node_with(pool: usize) -> (Server, PgCluster) {
    let pg = PgCluster::start();
    let storage = format!(
        "type = \"postgresql\"\nconnection_url = \"{}\"\nmax_connections = {pool}\n",
        pg.url()
    );
    let mut node = Server::config_mode_storage(&storage, "", None, &[501]);
    node.init();
    (node, pg)
}

/// Reads, writes, a token and a listing, one after the other and from several threads at once.
fn serves_everything(node: &Server) {
    let http: Http = node.http();
    let key = format!("small-pool-{}", uid());
    for round in 0..3 {
        http.put_secret("secret", &key, &json!({"round": round}));
        let r = http.get(&format!("secret/data/{key}"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["data"]["data"],
            json!({"round": round}),
            "{}",
            r.text
        );
    }
    let r = http.request("POST", "auth/token/create", Some(&json!({"ttl": "1h"})));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = http.request("LIST", "secret/metadata/", None);
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::scope(|s| {
        for t in 0..6 {
            let (http, key) = (node.http(), format!("{key}-{t}"));
            s.spawn(move || {
                for i in 0..10 {
                    http.put_secret("secret", &key, &json!({"i": i}));
                    let r = http.get(&format!("secret/data/{key}"));
                    assert_eq!(r.status, 200, "{}", r.text);
                }
            });
        }
    });
}

#[test]
fn a_node_with_one_database_connection_serves_reads_and_writes() {
    let (node, _pg) = node_with(1);
    serves_everything(&node);
}

#[test]
fn a_node_with_two_database_connections_serves_reads_and_writes() {
    let (node, _pg) = node_with(2);
    serves_everything(&node);
}
