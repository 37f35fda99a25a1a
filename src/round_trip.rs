//! Several writes sent together, or a write and the read after it: statements built for one
//! backend, run in as few round trips as that backend allows. Below every module that writes (the
//! audit trail, the issuance group commit, the Mini Program sign-in, the returning login), and
//! importing none of them.

use sea_orm::sea_query::Expr;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, Statement};

/// Run `statements` (each an `INSERT`, or a `DELETE` or `UPDATE` whose result nobody reads,
/// built for this connection's backend, in order) in as few round trips as the backend allows.
/// Each statement sent is a hand-off to sqlx's connection task (on SQLite, to its worker thread)
/// and back, which the flow grant's profile showed to cost more than building and running the
/// SQL (design §10).
/// - **SQLite**: one `execute` of the statements separated by `;` (sqlx runs them in turn,
///   binding each its share of the values); each statement commits on its own, as before.
/// - **PostgreSQL**: one statement, the earlier ones as data-modifying `WITH` clauses of the
///   last: all of them commit or none. They all see the database as it was before the statement
///   (a `DELETE` does not see the rows an insert beside it adds).
/// - **MySQL/MariaDB**: one statement each (prepared statements cannot hold several).
///
/// A statement that fails stops the ones after it; on SQLite the ones before it stay written, so
/// put first what is harmless alone.
pub async fn write_together(
    conn: &impl ConnectionTrait,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    send(conn, statements, 0).await
}

/// How many times [`write_together_outside_transactions`] sends a statement again that the
/// database ended to settle a deadlock.
pub const DEADLOCK_RETRIES: u32 = 2;

/// [`write_together`] on the pool itself, outside any transaction, so that each statement
/// commits (or is undone) alone: one the database ended to settle a deadlock
/// ([`crate::db_error::is_deadlock`]; PostgreSQL and MariaDB) changed nothing, and is sent again,
/// up to [`DEADLOCK_RETRIES`] times, from where the writes stopped. Inside a transaction a lost
/// deadlock undoes the whole transaction (MariaDB) or spoils it (PostgreSQL), which only its owner
/// can start again: hence a `DatabaseConnection`, never a transaction.
pub async fn write_together_outside_transactions(
    db: &DatabaseConnection,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
    send(db, statements, DEADLOCK_RETRIES).await
}

async fn send(
    conn: &impl ConnectionTrait,
    statements: Vec<Statement>,
    deadlock_retries: u32,
) -> Result<(), DbErr> {
    match conn.get_database_backend() {
        // SQLite has one writer at a time and no deadlocks to lose.
        DbBackend::Sqlite => {
            conn.execute_raw(sqlite_joined(statements)).await?;
        }
        DbBackend::Postgres => {
            let joined = postgres_joined(statements);
            execute(conn, joined, deadlock_retries).await?;
        }
        _ => {
            for statement in statements {
                execute(conn, statement, deadlock_retries).await?;
            }
        }
    }
    Ok(())
}

/// One statement, sent again up to `deadlock_retries` times while the database ends it to settle
/// a deadlock.
async fn execute(
    conn: &impl ConnectionTrait,
    statement: Statement,
    deadlock_retries: u32,
) -> Result<(), DbErr> {
    let mut lost = 0;
    loop {
        let sent = if lost < deadlock_retries {
            statement.clone()
        } else {
            return conn.execute_raw(statement).await.map(drop);
        };
        match conn.execute_raw(sent).await {
            Ok(_) => return Ok(()),
            Err(error) if crate::db_error::is_deadlock(&error) => {
                lost += 1;
                tracing::info!(%error, lost, "a write lost a deadlock; sending it again");
                let backend = match conn.get_database_backend() {
                    DbBackend::Postgres => "postgres",
                    DbBackend::MySql => "mysql",
                    _ => "sqlite",
                };
                metrics::counter!(crate::metrics::DB_DEADLOCK_RETRIES, "backend" => backend)
                    .increment(1);
            }
            Err(error) => return Err(error),
        }
    }
}

/// PostgreSQL: the statements as one, the earlier ones as data-modifying `WITH` clauses of the
/// last, its placeholders renumbered.
fn postgres_joined(statements: Vec<Statement>) -> Statement {
    let count = statements.len();
    let mut sql = String::new();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    for (index, statement) in statements.into_iter().enumerate() {
        let renumbered = shift_placeholders(&statement.sql, values.len());
        if index + 1 < count {
            sql.push_str(if index == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{index} AS ({renumbered})"));
        } else {
            if index > 0 {
                sql.push(' ');
            }
            sql.push_str(&renumbered);
        }
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// [`write_together`], then `read` once the writes are committed; its rows. On SQLite in the same
/// round trip: the writes and the read in one `execute`, each write committing on its own before
/// the read runs (one pool checkout instead of two; each checkout costs a hand-off to the
/// connection's worker thread and another for sqlx's ping on release). Elsewhere the read is a
/// statement of its own after the writes: on PostgreSQL a read inside the writes' statement would
/// see the database as it was before them, and callers read after writing to see what a
/// concurrent transaction committed meanwhile.
pub async fn write_together_then_read(
    conn: &impl ConnectionTrait,
    mut statements: Vec<Statement>,
    read: Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    if conn.get_database_backend() != DbBackend::Sqlite {
        write_together(conn, statements).await?;
        return conn.query_all_raw(read).await;
    }
    statements.push(read);
    conn.query_all_raw(sqlite_joined(statements)).await
}

/// SQLite statements as one, separated by `;` (sqlx runs them in turn, binding each its share of
/// the values).
fn sqlite_joined(statements: Vec<Statement>) -> Statement {
    let mut sql = String::new();
    let mut values = Vec::new();
    for statement in statements {
        if !sql.is_empty() {
            sql.push_str(";\n");
        }
        sql.push_str(&statement.sql);
        values.extend(statement.values.map(|v| v.0).unwrap_or_default());
    }
    Statement::from_sql_and_values(DbBackend::Sqlite, sql, values)
}

/// Run `write` (an `UPDATE` or `DELETE` built for this connection's backend) and then the
/// `SELECT` that `read` builds, given an expression for the number of rows `write` changed (to
/// select as a column); the selected rows. One round trip where the backend allows:
/// - **SQLite**: one `execute` of both statements; the count is `changes()`, and the read sees
///   what the write changed.
/// - **PostgreSQL**: one statement, the write as a data-modifying `WITH` clause whose rows the
///   count counts; the read sees the database as it was before the statement, so a caller
///   must not read the columns the write sets (it knows their new values).
/// - **MySQL/MariaDB**: the write, then the read with its row count as a value.
pub async fn write_then_read(
    conn: &impl ConnectionTrait,
    write: Statement,
    read: impl FnOnce(Expr) -> Statement,
) -> Result<Vec<QueryResult>, DbErr> {
    match conn.get_database_backend() {
        DbBackend::Sqlite => {
            let read = read(Expr::cust("changes()"));
            let mut values = write.values.map(|v| v.0).unwrap_or_default();
            values.extend(read.values.map(|v| v.0).unwrap_or_default());
            let sql = format!("{};\n{}", write.sql, read.sql);
            conn.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                sql,
                values,
            ))
            .await
        }
        DbBackend::Postgres => {
            let read = read(Expr::cust(r#"(SELECT count(*) FROM "written")"#));
            let mut values = write.values.map(|v| v.0).unwrap_or_default();
            let sql = format!(
                r#"WITH "written" AS ({} RETURNING 1) {}"#,
                write.sql,
                shift_placeholders(&read.sql, values.len())
            );
            values.extend(read.values.map(|v| v.0).unwrap_or_default());
            conn.query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await
        }
        _ => {
            let written = conn.execute_raw(write).await?.rows_affected();
            let written = i64::try_from(written).unwrap_or(i64::MAX);
            conn.query_all_raw(read(Expr::val(written))).await
        }
    }
}

/// `sql` (PostgreSQL, with `$1`, `$2`, … placeholders) with every placeholder number raised by
/// `by`, so that it can follow `by` values of an earlier statement in one. Quoted identifiers and
/// literals are copied as they are (sea-query binds every value, so they hold no placeholders,
/// but a `$` inside one must not be taken for one).
fn shift_placeholders(sql: &str, by: usize) -> String {
    if by == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut number = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    number.push(*d);
                    chars.next();
                }
                match number.parse::<usize>() {
                    Ok(n) => out.push_str(&format!("${}", n + by)),
                    Err(_) => {
                        out.push('$');
                        out.push_str(&number);
                    }
                }
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::shift_placeholders;

    #[test]
    fn placeholders_are_shifted_outside_quotes_only() {
        assert_eq!(
            shift_placeholders(r#"INSERT INTO "t$1" ("a", "b") VALUES ($1, $2)"#, 3),
            r#"INSERT INTO "t$1" ("a", "b") VALUES ($4, $5)"#
        );
        assert_eq!(
            shift_placeholders("SELECT '$1', $10", 2),
            "SELECT '$1', $12"
        );
        assert_eq!(shift_placeholders("VALUES ($1)", 0), "VALUES ($1)");
    }
}
