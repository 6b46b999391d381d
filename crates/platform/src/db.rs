//! Database connections: SQLite (embedded default: WAL, busy timeout, one writer
//! and a few readers) or PostgreSQL (production), chosen by the URL; the same
//! code runs on both.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};

/// Connects to `url`. SQLite gets WAL, a busy timeout and a single connection, so
/// writers never race each other into "database is locked".
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    if url.trim().is_empty() {
        return Err(DbErr::Custom(
            "database.url is empty: set SELFHELP_DATABASE__URL (sqlite://file.db?mode=rwc or postgres://…)"
                .into(),
        ));
    }
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    if is_sqlite(url) {
        opts.max_connections(1).min_connections(1);
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    } else {
        opts.max_connections(max_connections.max(1));
    }
    Database::connect(opts).await
}

/// About how many bytes of values and SQL one statement should carry. sqlx
/// 0.9.0 leaves Nagle's algorithm on for PostgreSQL (upstream issue
/// transact-rs/sqlx#4335, fixed after that release): over TLS, a statement
/// longer than one TLS record (16 KiB) is written in pieces and the last waits
/// for the server's delayed acknowledgement, 40 ms. Multi-row statements are
/// split below that.
pub const STATEMENT_BYTES: usize = 8 * 1024;

/// Rows one statement takes at most, whatever their size.
const STATEMENT_ROWS: usize = 500;

/// `items` in runs for multi-row statements (an INSERT of many rows, an IN
/// list): on PostgreSQL each at most [`STATEMENT_BYTES`] by `size` (bytes of
/// an item's values, and of its SQL if many columns) plus a little per item; on SQLite, in-process, only
/// the row limit applies. Each run has at least one item.
pub fn statement_chunks<'a, T>(
    backend: sea_orm::DbBackend,
    items: &'a [T],
    size: impl Fn(&T) -> usize + 'a,
) -> impl Iterator<Item = &'a [T]> + 'a {
    // Its placeholder and bind framing, about.
    const PER_ITEM: usize = 16;
    let budget = match backend {
        sea_orm::DbBackend::Sqlite => usize::MAX,
        _ => STATEMENT_BYTES,
    };
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes: usize = 0;
        let mut n = 0;
        for item in rest.iter().take(STATEMENT_ROWS) {
            let next = size(item) + PER_ITEM;
            if n > 0 && bytes.saturating_add(next) > budget {
                break;
            }
            bytes += next;
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// A service's database connections: `write` for transactions and every write,
/// `read` for plain reads on the hot paths (see [`connect_readers`]).
#[derive(Clone)]
pub struct Databases {
    pub write: DatabaseConnection,
    pub read: DatabaseConnection,
    /// Whether `read` is a pool of its own (SQLite files), not `write`'s.
    pub read_apart: bool,
}

impl Databases {
    /// Each pool once, named `write` or `read`.
    pub fn pools(&self) -> Vec<(&'static str, &DatabaseConnection)> {
        let mut pools = vec![("write", &self.write)];
        if self.read_apart {
            pools.push(("read", &self.read));
        }
        pools
    }
}

/// A connection pool as sampled by [`pool_stats`].
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    /// Connections open.
    pub size: u32,
    /// Of those, not in use.
    pub idle: usize,
    /// The most it may open.
    pub max: u32,
    /// How long getting a connection took just after.
    pub acquire: Duration,
}

/// Samples `db`'s pool (`None` for a backend selfhelp does not use). When no
/// connection comes within the acquire timeout, `acquire` is that whole wait.
pub async fn pool_stats(db: &DatabaseConnection) -> Option<PoolStats> {
    async fn sample<D: sea_orm::sqlx::Database>(
        pool: &sea_orm::sqlx::Pool<D>,
    ) -> Option<PoolStats> {
        // Counted before the probe takes its own connection.
        let (size, idle) = (pool.size(), pool.num_idle());
        let started = std::time::Instant::now();
        // A full pool is what this is for: a failed wait is measured too.
        drop(pool.acquire().await);
        let acquire = started.elapsed();
        Some(PoolStats {
            size,
            idle,
            max: pool.options().get_max_connections(),
            acquire,
        })
    }
    match db.get_database_backend() {
        sea_orm::DbBackend::Postgres => sample(db.get_postgres_connection_pool()).await,
        sea_orm::DbBackend::Sqlite => sample(db.get_sqlite_connection_pool()).await,
        _ => None,
    }
}

/// Connections for reads that need no transaction (the hot read paths: a group
/// card, a search page, an inbox). On SQLite, `readers` read-only connections
/// beside the one writer: WAL lets them read while the writer writes, so a read
/// never queues behind a write, and a read started after a commit sees it. On
/// PostgreSQL (and for an in-memory SQLite database, which other connections
/// cannot see) it is `writer`'s own pool.
pub async fn connect_readers(
    url: &str,
    writer: &DatabaseConnection,
    readers: u32,
) -> Result<DatabaseConnection, DbErr> {
    if !readers_apart(url) {
        return Ok(writer.clone());
    }
    let mut opts = ConnectOptions::new(url.to_string());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .max_connections(readers.max(1))
        .min_connections(1);
    opts.map_sqlx_sqlite_opts(|o| {
        o.read_only(true)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10))
    });
    Database::connect(opts).await
}

/// Whether [`connect_readers`] opens a pool of its own for `url`.
pub fn readers_apart(url: &str) -> bool {
    is_sqlite(url) && !url.contains(":memory:") && !url.contains("mode=memory")
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

/// Makes transactions that check a count and then insert (at most 20 alerts a
/// person, 10 webhooks…) take turns per `key`, so two at once cannot both see
/// room for one more. On PostgreSQL a lock held until `txn` ends; SQLite has a
/// single writer, whose transactions already take turns.
pub async fn take_turns(txn: &sea_orm::DatabaseTransaction, key: &str) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    if txn.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        [key.into()],
    ))
    .await
    .map(|_| ())
}

/// Begins a transaction whose commit does not wait for the disk (PostgreSQL's
/// `synchronous_commit = off` for this transaction only; SQLite here never
/// waits for it). Only for bookkeeping that may be lost in a crash without
/// harm because it is done again — the relay's leases and "published" marks,
/// whose loss means a repeat publish that JetStream and the inboxes drop. It
/// spares the disk a flush (about 3 ms on a plain disk) per relay round, which
/// the durable commits of requests and consumers need.
pub async fn begin_lightly(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, TransactionTrait};
    let txn = db.begin().await?;
    if txn.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_unprepared("SET LOCAL synchronous_commit = off")
            .await?;
    }
    Ok(txn)
}

/// True when `err` is a unique-constraint violation (a concurrent writer won).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Failures of the connection rather than of the statement: the database could
/// not be reached, the connection broke, or the server ended it (a restart, a
/// failover, an administrator); the same statement may well work on retry.
pub fn is_transient(e: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::Error as Sqlx;
    let sqlx = match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => s,
        _ => return false,
    };
    match sqlx.as_ref() {
        Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed => true,
        // SQLSTATE classes 08 (connection exception) and 57 (operator
        // intervention: admin shutdown, crash shutdown, cannot connect now),
        // but not 57014, a statement cancelled for taking too long: retrying
        // that only repeats the load.
        Sqlx::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || (code.starts_with("57") && code != "57014")
        }),
        _ => false,
    }
}

/// One page of `query` (already filtered and ordered) from `offset`, with how
/// many rows the whole query has: the count-and-offset pager every paged list
/// uses.
pub async fn offset_page<E, C>(
    conn: &C,
    query: sea_orm::Select<E>,
    offset: u64,
    limit: u64,
) -> Result<(Vec<E::Model>, u64), DbErr>
where
    E: sea_orm::EntityTrait,
    E::Model: Send + Sync,
    C: sea_orm::ConnectionTrait,
{
    use sea_orm::{PaginatorTrait, QuerySelect};
    let total = query.clone().count(conn).await?;
    let rows = query.offset(offset).limit(limit).all(conn).await?;
    Ok((rows, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_split_by_size_and_by_rows() {
        let small = vec!["x".repeat(20); 1_200];
        let pg = sea_orm::DbBackend::Postgres;
        let sizes: Vec<usize> = statement_chunks(pg, &small, |s| s.len())
            .map(<[String]>::len)
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 1_200, "every item once");
        assert!(
            sizes.iter().all(|n| *n * 36 <= STATEMENT_BYTES),
            "{sizes:?}"
        );

        let tiny = vec![0u8; 1_200];
        let sizes: Vec<usize> = statement_chunks(pg, &tiny, |_| 0)
            .map(<[u8]>::len)
            .collect();
        assert_eq!(sizes, vec![STATEMENT_ROWS, STATEMENT_ROWS, 200]);

        // One item larger than the budget still goes, alone.
        let big = vec!["y".repeat(STATEMENT_BYTES * 2), "z".into()];
        let sizes: Vec<usize> = statement_chunks(pg, &big, |s| s.len())
            .map(<[String]>::len)
            .collect();
        assert_eq!(sizes, vec![1, 1]);
        assert_eq!(
            statement_chunks(pg, &[] as &[String], |s| s.len()).count(),
            0
        );
        // SQLite is in-process: only the row limit.
        let sqlite = sea_orm::DbBackend::Sqlite;
        let sizes: Vec<usize> = statement_chunks(sqlite, &small, |s| s.len())
            .map(<[String]>::len)
            .collect();
        assert_eq!(sizes, vec![STATEMENT_ROWS, STATEMENT_ROWS, 200]);
    }
}
