//! keel-net: the data model shared by the engine, the wire and the client.
