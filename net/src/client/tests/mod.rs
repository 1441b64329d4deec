//! Tests of the clients: the routing decision (pure), and both clients against a small
//! in-test server speaking the codec (answers out of order, late, or not at all).

mod blocking_tests;
mod glommio_tests;
mod route_tests;
mod server;
