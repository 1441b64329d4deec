//! The data and table commands of `keel`: requests through the native client, answers
//! printed for people (plain JSON items, aligned tables) or, with `--json`, for scripts
//! (DynamoDB's typed JSON, one document per command).

use std::collections::BTreeMap;

use keel_net::client::{Client, ClientError, ClientOptions};
use keel_net::codec::{
    CreateTable, DeleteItem, ErrorResponse, ExprArgs, GetItem, ItemPage, PutItem, Query, Request,
    Response, ReturnValues, Scan, TableDescription, TableStatus, UpdateItem,
};
use keel_net::{Item, KeyAttribute, KeySchema, KeyType};
use serde_json::{json, Value as Json};

use crate::json::{parse_item, plain_item_json, typed_item_json, Form};

/// The expression names and values shared by data commands.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExprOptions {
    /// Expression attribute names, as JSON: '{"#n": "name"}'.
    #[arg(long)]
    pub names: Option<String>,
    /// Expression attribute values, as JSON (plain or typed): '{":v": 1}'.
    #[arg(long)]
    pub values: Option<String>,
}

/// A table or item command of the `keel` binary.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Create a table: create-table users --partition-key id:S [--sort-key ts:N].
    CreateTable {
        /// Table name.
        table: String,
        /// Partition key as name:TYPE (S, N or B).
        #[arg(long)]
        partition_key: String,
        /// Sort key as name:TYPE.
        #[arg(long)]
        sort_key: Option<String>,
        /// Partitions (default: the node's).
        #[arg(long)]
        partitions: Option<u32>,
    },
    /// Delete a table and all its items.
    DeleteTable {
        /// Table name.
        table: String,
    },
    /// Show a table's key schema, status and partitions.
    DescribeTable {
        /// Table name.
        table: String,
    },
    /// List the tables.
    ListTables,
    /// Store an item: put users '{"id":"u1","n":1}'.
    Put {
        /// Table name.
        table: String,
        /// The item as JSON (plain or DynamoDB's typed form).
        item: String,
        /// Condition expression, e.g. 'attribute_not_exists(id)'.
        #[arg(long)]
        condition: Option<String>,
        /// Print the item it replaced.
        #[arg(long)]
        return_old: bool,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
    /// Read an item: get users '{"id":"u1"}'.
    Get {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Projection expression, e.g. 'n, tags[0]'.
        #[arg(long)]
        projection: Option<String>,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
    /// Delete an item: delete users '{"id":"u1"}'.
    Delete {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Condition expression.
        #[arg(long)]
        condition: Option<String>,
        /// Print the item it removed.
        #[arg(long)]
        return_old: bool,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
    /// Update an item: update users '{"id":"u1"}' 'SET n = n + :one' --values '{":one":1}'.
    Update {
        /// Table name.
        table: String,
        /// The key as JSON.
        key: String,
        /// Update expression (SET, REMOVE, ADD, DELETE).
        update: String,
        /// Condition expression.
        #[arg(long)]
        condition: Option<String>,
        /// none, all-old, updated-old, all-new or updated-new.
        #[arg(long, default_value = "all-new")]
        return_values: String,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
    /// Query one partition key: query users 'id = :id AND ts > :t' --values '{...}'.
    Query {
        /// Table name.
        table: String,
        /// Key condition expression.
        key_condition: String,
        /// Filter expression.
        #[arg(long)]
        filter: Option<String>,
        /// Projection expression.
        #[arg(long)]
        projection: Option<String>,
        /// Descending sort-key order.
        #[arg(long)]
        reverse: bool,
        /// Items evaluated per page.
        #[arg(long)]
        limit: Option<u32>,
        /// Read every page.
        #[arg(long)]
        all: bool,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
    /// Scan a table (or one segment of it).
    Scan {
        /// Table name.
        table: String,
        /// Filter expression.
        #[arg(long)]
        filter: Option<String>,
        /// Projection expression.
        #[arg(long)]
        projection: Option<String>,
        /// Items evaluated per page.
        #[arg(long)]
        limit: Option<u32>,
        /// Read every page.
        #[arg(long)]
        all: bool,
        /// This segment of a parallel scan.
        #[arg(long, default_value_t = 0)]
        segment: u32,
        /// Segments of a parallel scan.
        #[arg(long, default_value_t = 1)]
        total_segments: u32,
        /// Expression attribute names and values.
        #[command(flatten)]
        expr: ExprOptions,
    },
}

/// Why a command failed; the exit code tells the kinds apart.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or its JSON is wrong (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The node answered with an error (exit code 1).
    #[error("{code:?}: {message}")]
    Server {
        /// The error code.
        code: keel_net::codec::ErrorCode,
        /// The node's message.
        message: String,
    },
    /// The node could not be reached or the connection failed (exit code 3).
    #[error("{0}")]
    Connection(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Server { .. } => 1,
            CliError::Connection(_) => 3,
        }
    }
}

fn server(e: ErrorResponse) -> CliError {
    CliError::Server {
        code: e.code,
        message: e.message,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> CliError {
        match e {
            ClientError::Server(e) => server(e),
            other => CliError::Connection(other.to_string()),
        }
    }
}

fn key_attribute(spec: &str) -> Result<KeyAttribute, CliError> {
    let (name, t) = spec
        .rsplit_once(':')
        .ok_or_else(|| CliError::Usage(format!("key {spec:?}: write it as name:TYPE")))?;
    let key_type = match t {
        "S" | "s" => KeyType::S,
        "N" | "n" => KeyType::N,
        "B" | "b" => KeyType::B,
        other => {
            return Err(CliError::Usage(format!(
                "key {spec:?}: type {other:?} is not S, N or B"
            )))
        }
    };
    Ok(KeyAttribute::new(name, key_type))
}

fn item_arg(text: &str, what: &str) -> Result<Item, CliError> {
    parse_item(text, Form::Auto).map_err(|e| CliError::Usage(format!("{what}: {e}")))
}

fn expr_args(o: &ExprOptions) -> Result<ExprArgs, CliError> {
    let names: BTreeMap<String, String> = match &o.names {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| CliError::Usage(format!("--names: expected {{\"#n\": \"name\"}}: {e}")))?,
        None => BTreeMap::new(),
    };
    let values = match &o.values {
        Some(text) => item_arg(text, "--values")?,
        None => BTreeMap::new(),
    };
    Ok(ExprArgs { names, values })
}

fn return_values(s: &str) -> Result<ReturnValues, CliError> {
    Ok(match s.to_ascii_lowercase().replace('_', "-").as_str() {
        "none" => ReturnValues::None,
        "all-old" => ReturnValues::AllOld,
        "updated-old" => ReturnValues::UpdatedOld,
        "all-new" => ReturnValues::AllNew,
        "updated-new" => ReturnValues::UpdatedNew,
        other => {
            return Err(CliError::Usage(format!(
                "--return-values {other:?}: use none, all-old, updated-old, all-new or updated-new"
            )))
        }
    })
}

fn call(client: &Client, request: Request) -> Result<Response, CliError> {
    match client.call(request)? {
        Response::Error(e) => Err(server(e)),
        r => Ok(r),
    }
}

fn old_if(return_old: bool) -> ReturnValues {
    if return_old {
        ReturnValues::AllOld
    } else {
        ReturnValues::None
    }
}

/// Sends a write and prints the attributes it returned.
fn write(client: &Client, request: Request) -> Result<Output, CliError> {
    match call(client, request)? {
        Response::Item(attrs) => Ok(item_output(attrs, "Attributes")),
        r => Err(unexpected(&r)),
    }
}

/// Reads one page of a Query or Scan, or every page with `all`.
fn read_pages(
    client: &Client,
    all: bool,
    mut page_request: impl FnMut(Option<Item>) -> Request,
) -> Result<Output, CliError> {
    let mut pages = Vec::new();
    let mut start_key = None;
    loop {
        let page = match call(client, page_request(start_key.take()))? {
            Response::Items(p) => p,
            r => return Err(unexpected(&r)),
        };
        let next = page.last_key.clone();
        pages.push(page);
        match next {
            Some(k) if all => start_key = Some(k),
            _ => return Ok(page_output(pages)),
        }
    }
}

fn unexpected(r: &Response) -> CliError {
    CliError::Connection(format!("unexpected answer from the node: {r:?}"))
}

fn type_name(t: KeyType) -> &'static str {
    match t {
        KeyType::S => "S",
        KeyType::N => "N",
        KeyType::B => "B",
    }
}

fn status_name(s: TableStatus) -> &'static str {
    match s {
        TableStatus::Creating => "CREATING",
        TableStatus::Active => "ACTIVE",
        TableStatus::Deleting => "DELETING",
    }
}

fn table_json(d: &TableDescription) -> Json {
    let mut keys = vec![json!({"name": d.schema.partition_key.name, "type":
        type_name(d.schema.partition_key.key_type), "role": "HASH"})];
    if let Some(sk) = &d.schema.sort_key {
        keys.push(json!({"name": sk.name, "type": type_name(sk.key_type), "role": "RANGE"}));
    }
    json!({
        "table": d.table,
        "status": status_name(d.status),
        "key_schema": keys,
        "created_unix_ms": d.created_unix_ms,
        "partitions": d.partitions.iter().map(|p| json!({
            "hash_low": format!("{:#018x}", p.hash_low),
            "hash_high": format!("{:#018x}", p.hash_high),
            "shard": p.shard,
        })).collect::<Vec<_>>(),
    })
}

fn table_text(d: &TableDescription) -> String {
    let key = |a: &KeyAttribute| format!("{} ({})", a.name, type_name(a.key_type));
    let mut s = format!(
        "table       {}\nstatus      {}\npartition   {}\n",
        d.table,
        status_name(d.status),
        key(&d.schema.partition_key)
    );
    if let Some(sk) = &d.schema.sort_key {
        s.push_str(&format!("sort        {}\n", key(sk)));
    }
    s.push_str(&format!("partitions  {}", d.partitions.len()));
    let mut shards: BTreeMap<u32, usize> = BTreeMap::new();
    for p in &d.partitions {
        *shards.entry(p.shard).or_default() += 1;
    }
    let per: Vec<String> = shards
        .iter()
        .map(|(s, n)| format!("shard {s}: {n}"))
        .collect();
    s.push_str(&format!(" ({})", per.join(", ")));
    s
}

/// What a command prints.
pub struct Output {
    /// For people.
    pub text: String,
    /// For `--json`.
    pub json: Json,
}

fn item_output(item: Option<Item>, key: &str) -> Output {
    match item {
        Some(i) => Output {
            text: serde_json::to_string_pretty(&plain_item_json(&i)).unwrap_or_default(),
            json: json!({ key: typed_item_json(&i) }),
        },
        None => Output {
            text: String::new(),
            json: json!({}),
        },
    }
}

fn page_output(pages: Vec<ItemPage>) -> Output {
    let mut text = String::new();
    let mut items = Vec::new();
    let mut scanned = 0u64;
    let mut last = None;
    for p in pages {
        scanned += u64::from(p.scanned_count);
        for i in &p.items {
            text.push_str(&plain_item_json(i).to_string());
            text.push('\n');
            items.push(typed_item_json(i));
        }
        last = p.last_key;
    }
    let count = items.len();
    text.push_str(&format!("({count} items, {scanned} scanned"));
    if let Some(k) = &last {
        text.push_str(&format!(
            "; more after {}: pass --all to read every page",
            plain_item_json(k)
        ));
    }
    text.push(')');
    let mut j = json!({"Items": items, "Count": count, "ScannedCount": scanned});
    if let Some(k) = last {
        j["LastEvaluatedKey"] = typed_item_json(&k);
    }
    Output { text, json: j }
}

/// Connects to `endpoint` and carries out `action`.
pub fn execute(endpoint: &str, action: Action) -> Result<Output, CliError> {
    let options = ClientOptions::default();
    let client = Client::connect(endpoint, options)
        .map_err(|e| CliError::Connection(format!("connecting to {endpoint}: {e}")))?;
    match action {
        Action::CreateTable {
            table,
            partition_key,
            sort_key,
            partitions,
        } => {
            let pk = key_attribute(&partition_key)?;
            let schema = match sort_key {
                Some(sk) => KeySchema::with_sort_key(pk, key_attribute(&sk)?),
                None => KeySchema::partition_only(pk),
            };
            let request = Request::CreateTable(CreateTable {
                table,
                schema,
                partitions,
            });
            match call(&client, request)? {
                Response::Table(d) => Ok(Output {
                    text: format!("created\n{}", table_text(&d)),
                    json: table_json(&d),
                }),
                r => Err(unexpected(&r)),
            }
        }
        Action::DeleteTable { table } => match call(&client, Request::DeleteTable { table })? {
            Response::Table(d) => Ok(Output {
                text: format!("deleted table {}", d.table),
                json: table_json(&d),
            }),
            r => Err(unexpected(&r)),
        },
        Action::DescribeTable { table } => match call(&client, Request::DescribeTable { table })? {
            Response::Table(d) => Ok(Output {
                text: table_text(&d),
                json: table_json(&d),
            }),
            r => Err(unexpected(&r)),
        },
        Action::ListTables => {
            let mut names = Vec::new();
            let mut after = None;
            loop {
                let request = Request::ListTables {
                    start_after: after.clone(),
                    limit: None,
                };
                match call(&client, request)? {
                    Response::TableNames { tables, last } => {
                        names.extend(tables);
                        match last {
                            Some(l) => after = Some(l),
                            None => break,
                        }
                    }
                    r => return Err(unexpected(&r)),
                }
            }
            Ok(Output {
                text: names.join("\n"),
                json: json!({ "TableNames": names }),
            })
        }
        Action::Put {
            table,
            item,
            condition,
            return_old,
            expr,
        } => {
            let request = Request::PutItem(PutItem {
                table,
                item: item_arg(&item, "item")?,
                condition,
                args: expr_args(&expr)?,
                return_values: old_if(return_old),
            });
            write(&client, request)
        }
        Action::Get {
            table,
            key,
            projection,
            expr,
        } => {
            let request = Request::GetItem(GetItem {
                table,
                key: item_arg(&key, "key")?,
                projection,
                args: expr_args(&expr)?,
                consistent: true,
            });
            match call(&client, request)? {
                Response::Item(None) => Ok(Output {
                    text: "(no item)".into(),
                    json: json!({}),
                }),
                Response::Item(item) => Ok(item_output(item, "Item")),
                r => Err(unexpected(&r)),
            }
        }
        Action::Delete {
            table,
            key,
            condition,
            return_old,
            expr,
        } => {
            let request = Request::DeleteItem(DeleteItem {
                table,
                key: item_arg(&key, "key")?,
                condition,
                args: expr_args(&expr)?,
                return_values: old_if(return_old),
            });
            write(&client, request)
        }
        Action::Update {
            table,
            key,
            update,
            condition,
            return_values: rv,
            expr,
        } => {
            let request = Request::UpdateItem(UpdateItem {
                table,
                key: item_arg(&key, "key")?,
                update,
                condition,
                args: expr_args(&expr)?,
                return_values: return_values(&rv)?,
            });
            write(&client, request)
        }
        Action::Query {
            table,
            key_condition,
            filter,
            projection,
            reverse,
            limit,
            all,
            expr,
        } => {
            let args = expr_args(&expr)?;
            read_pages(&client, all, |start_key| {
                Request::Query(Query {
                    table: table.clone(),
                    key_condition: key_condition.clone(),
                    filter: filter.clone(),
                    projection: projection.clone(),
                    args: args.clone(),
                    forward: !reverse,
                    limit,
                    start_key,
                    consistent: true,
                })
            })
        }
        Action::Scan {
            table,
            filter,
            projection,
            limit,
            all,
            segment,
            total_segments,
            expr,
        } => {
            let args = expr_args(&expr)?;
            read_pages(&client, all, |start_key| {
                Request::Scan(Scan {
                    table: table.clone(),
                    filter: filter.clone(),
                    projection: projection.clone(),
                    args: args.clone(),
                    limit,
                    start_key,
                    segment,
                    total_segments,
                    consistent: true,
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_net::Value;

    #[test]
    fn key_specs_and_return_values_parse_or_explain() {
        assert_eq!(
            key_attribute("id:S").unwrap(),
            KeyAttribute::new("id", KeyType::S)
        );
        assert_eq!(
            key_attribute("a:b:N").unwrap(),
            KeyAttribute::new("a:b", KeyType::N)
        );
        assert!(matches!(key_attribute("id"), Err(CliError::Usage(_))));
        assert!(matches!(key_attribute("id:X"), Err(CliError::Usage(_))));
        assert_eq!(return_values("ALL_NEW").unwrap(), ReturnValues::AllNew);
        assert!(matches!(return_values("some"), Err(CliError::Usage(_))));
    }

    #[test]
    fn expression_arguments_take_plain_or_typed_values() {
        let args = expr_args(&ExprOptions {
            names: Some(r##"{"#n":"name"}"##.into()),
            values: Some(r#"{":one":1,":s":{"S":"x"}}"#.into()),
        });
        // Mixed forms: auto-detection reads the object as plain (":s" becomes a map).
        let args = args.unwrap();
        assert_eq!(args.names.get("#n").map(String::as_str), Some("name"));
        assert_eq!(args.values.get(":one"), Some(&Value::N(1.into())));
        assert!(expr_args(&ExprOptions {
            names: Some("[1]".into()),
            values: None
        })
        .is_err());
    }
}
