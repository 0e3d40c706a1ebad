//! Whole-table reads and writes for `store copy`, inside one transaction of this backend.

use sqlx::{Arguments, AssertSqlSafe, Row};

use super::{DbArguments, DbRow, Pool};
use crate::StoreError;
use crate::copy::{Cell, ColumnType, TableSession, TableSpec};

/// Values bound per multi-row INSERT (under SQLite's 32,766 and PostgreSQL's 65,535).
const BINDS_PER_INSERT: usize = 16_000;

pub(super) struct Session {
    tx: sqlx::Transaction<'static, super::Db>,
}

pub(super) async fn begin(pool: &Pool, read_only: bool) -> Result<Session, StoreError> {
    let mut tx = pool.begin().await?;
    if read_only && let Some(snapshot) = super::SNAPSHOT {
        sqlx::query(snapshot).execute(&mut *tx).await?;
    }
    Ok(Session { tx })
}

fn bind(arguments: &mut DbArguments, cell: &Cell, kind: ColumnType) -> Result<(), StoreError> {
    let added = match (cell, kind) {
        (Cell::Null, ColumnType::Text) => arguments.add(Option::<String>::None),
        (Cell::Null, ColumnType::Int) => arguments.add(Option::<i64>::None),
        (Cell::Null, ColumnType::Bool) => arguments.add(Option::<bool>::None),
        (Cell::Null, ColumnType::Bytes) => arguments.add(Option::<Vec<u8>>::None),
        (Cell::Text(text), _) => arguments.add(text.clone()),
        (Cell::Int(number), _) => arguments.add(*number),
        (Cell::Bool(flag), _) => arguments.add(*flag),
        (Cell::Bytes(bytes), _) => arguments.add(bytes.clone()),
    };
    added.map_err(|e| StoreError::Database(sqlx::Error::Encode(e)))
}

fn cell(row: &DbRow, index: usize, kind: ColumnType) -> Result<Cell, StoreError> {
    Ok(match kind {
        ColumnType::Text => row
            .try_get::<Option<String>, _>(index)?
            .map_or(Cell::Null, Cell::Text),
        ColumnType::Int => row
            .try_get::<Option<i64>, _>(index)?
            .map_or(Cell::Null, Cell::Int),
        ColumnType::Bool => row
            .try_get::<Option<bool>, _>(index)?
            .map_or(Cell::Null, Cell::Bool),
        ColumnType::Bytes => row
            .try_get::<Option<Vec<u8>>, _>(index)?
            .map_or(Cell::Null, Cell::Bytes),
    })
}

#[async_trait::async_trait]
impl TableSession for Session {
    async fn read_page(
        &mut self,
        table: &TableSpec,
        after: Option<&[Cell]>,
        limit: u32,
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let keys = table.key.join(", ");
        let mut arguments = DbArguments::default();
        let mut sql = format!("SELECT {} FROM {}", table.column_list(), table.name);
        if let Some(after) = after {
            let placeholders: Vec<String> = (1..=after.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" WHERE ({keys}) > ({})", placeholders.join(", ")));
            for (value, key) in after.iter().zip(table.key) {
                let kind = table
                    .columns
                    .iter()
                    .find(|(name, _)| name == key)
                    .map_or(ColumnType::Text, |(_, kind)| *kind);
                bind(&mut arguments, value, kind)?;
            }
        }
        sql.push_str(&format!(" ORDER BY {keys} LIMIT {limit}"));
        // Table and column names come from the static schema list; values are bound.
        let rows = sqlx::query_with(AssertSqlSafe(sql), arguments)
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, (_, kind))| cell(row, i, *kind))
                    .collect()
            })
            .collect()
    }

    async fn write_rows(
        &mut self,
        table: &TableSpec,
        rows: &[Vec<Cell>],
    ) -> Result<(), StoreError> {
        let per_insert = (BINDS_PER_INSERT / table.columns.len()).max(1);
        for chunk in rows.chunks(per_insert) {
            let mut sql = format!(
                "INSERT INTO {} ({}) VALUES ",
                table.name,
                table.column_list()
            );
            let mut arguments = DbArguments::default();
            let mut index = 0;
            for (r, row) in chunk.iter().enumerate() {
                sql.push_str(if r == 0 { "(" } else { ", (" });
                for (c, (value, (_, kind))) in row.iter().zip(table.columns).enumerate() {
                    index += 1;
                    if c > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("${index}"));
                    bind(&mut arguments, value, *kind)?;
                }
                sql.push(')');
            }
            sqlx::query_with(AssertSqlSafe(sql), arguments)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    async fn count(&mut self, table: &TableSpec) -> Result<u64, StoreError> {
        let (count,): (i64,) = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {}",
            table.name
        )))
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(count.max(0) as u64)
    }

    async fn commit(self: Box<Self>) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl super::BackendStore {
    pub(crate) async fn table_session(
        &self,
        read_only: bool,
    ) -> Result<Box<dyn TableSession>, StoreError> {
        Ok(Box::new(begin(&self.pool, read_only).await?))
    }
}
