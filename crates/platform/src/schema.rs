//! Bringing a service's database schema up to date, safely when any number of
//! replicas start at once, or as a separate deployment step (`--migrate`).

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

use crate::db;

/// PostgreSQL advisory lock key held while migrating ("selfhelp" in ASCII).
/// Advisory locks belong to one database, so services with separate databases
/// never wait for each other.
const MIGRATION_LOCK: i64 = 0x73_65_6c_66_68_65_6c_70;

/// Applies `M`'s pending migrations and returns how many there were. `pool`
/// is the service's connection to `url`. On PostgreSQL the work runs on a
/// session of its own that holds an advisory lock: replicas starting together
/// take turns, and the later ones find nothing left to do (without it two
/// replicas creating the same table race, and one dies on a duplicate key in the
/// catalogue). A process killed mid-way loses its session and with it the lock.
/// SQLite serves one process, and its one connection may be an in-memory
/// database no other connection sees, so it migrates on `pool`.
pub async fn migrate<M: MigratorTrait>(
    url: &str,
    pool: &DatabaseConnection,
) -> anyhow::Result<usize> {
    if db::is_sqlite(url) {
        let pending = M::get_pending_migrations_read_only(pool).await?.len();
        M::up(pool, None).await?;
        return Ok(pending);
    }
    // One connection: the lock and the migrations must share a session.
    let session = db::connect(url, 1).await?;
    session
        .execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let result = async {
        let pending = M::get_pending_migrations_read_only(&session).await?.len();
        M::up(&session, None).await?;
        Ok::<_, sea_orm::DbErr>(pending)
    }
    .await;
    // Closing the session releases the lock too; unlock first all the same, so
    // the next replica need not wait for the pool to close the connection.
    let _ = session
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    session.close().await.ok();
    Ok(result?)
}

/// For replicas that do not migrate (`database.migrate_on_start = false`):
/// waits until a separate `--migrate` step has left nothing pending, saying what
/// it waits for every `every`. Never writes: the replica's database user may
/// lack the right to change the schema.
pub async fn wait_until_current<M: MigratorTrait>(
    conn: &DatabaseConnection,
    every: Duration,
    shutdown: &crate::Shutdown,
) -> anyhow::Result<()> {
    loop {
        let pending = M::get_pending_migrations_read_only(conn).await?;
        if pending.is_empty() {
            return Ok(());
        }
        tracing::warn!(
            pending = pending.len(),
            first = pending[0].name(),
            "database schema is behind and database.migrate_on_start is false: \
             waiting for a `--migrate` run"
        );
        tokio::select! {
            _ = shutdown.wait() => anyhow::bail!("stopped while waiting for database migrations"),
            _ = tokio::time::sleep(every) => {}
        }
    }
}
