//! Typed answers: a [`Response`] turned into what a typed client call returns. An
//! `Error` response becomes [`ClientError::Server`], a response of the wrong kind
//! [`ClientError::Protocol`]. Pure; shared by the blocking and the async client.

use crate::client::ClientError;
use crate::codec::{response_opcode, BatchGetOk, ItemPage, Response, TableDescription};
use crate::codec::{HelloOk, TableWrites};
use crate::model::Item;

fn unexpected(expected: &str, response: Response) -> ClientError {
    match response {
        Response::Error(error) => ClientError::Server(error),
        other => ClientError::Protocol(format!(
            "expected a {expected} response, got {:?}",
            response_opcode(&other)
        )),
    }
}

/// The answer to Hello.
pub fn hello_ok(response: Response) -> Result<HelloOk, ClientError> {
    match response {
        Response::HelloOk(ok) => Ok(ok),
        other => Err(unexpected("HelloOk", other)),
    }
}

/// The answer to CreateTable, DeleteTable and DescribeTable.
pub fn table(response: Response) -> Result<TableDescription, ClientError> {
    match response {
        Response::Table(table) => Ok(table),
        other => Err(unexpected("Table", other)),
    }
}

/// The answer to ListTables: the names and the last name if more may follow.
pub fn table_names(response: Response) -> Result<(Vec<String>, Option<String>), ClientError> {
    match response {
        Response::TableNames { tables, last } => Ok((tables, last)),
        other => Err(unexpected("TableNames", other)),
    }
}

/// The answer to PutItem, GetItem, DeleteItem and UpdateItem.
pub fn item(response: Response) -> Result<Option<Item>, ClientError> {
    match response {
        Response::Item(item) => Ok(item),
        other => Err(unexpected("Item", other)),
    }
}

/// The answer to Query and Scan.
pub fn items(response: Response) -> Result<ItemPage, ClientError> {
    match response {
        Response::Items(page) => Ok(page),
        other => Err(unexpected("Items", other)),
    }
}

/// The answer to BatchGetItem.
pub fn batch_get(response: Response) -> Result<BatchGetOk, ClientError> {
    match response {
        Response::BatchGet(ok) => Ok(ok),
        other => Err(unexpected("BatchGet", other)),
    }
}

/// The answer to BatchWriteItem: the writes not applied (retry them).
pub fn batch_write(response: Response) -> Result<Vec<TableWrites>, ClientError> {
    match response {
        Response::BatchWrite { unprocessed } => Ok(unprocessed),
        other => Err(unexpected("BatchWrite", other)),
    }
}
