//! The Parquet form of the wide export: one typed, nullable column per export column
//! (strings UTF-8, amounts DECIMAL(18, 2), dates DATE, the ingest time TIMESTAMP in
//! microseconds UTC), Snappy-compressed, in row groups of [`ROW_GROUP`] lines, so
//! memory holds one row group whatever the export's size.

use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;

use parquet::basic::{Compression, LogicalType, Repetition, TimeUnit, Type as Physical};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedColumnWriter, SerializedFileWriter};
use parquet::schema::types::ColumnPath;
use parquet::schema::types::Type;

use super::columns::{ColumnSpec, Kind, columns};
use super::wide::{Cell, WideClaim};

/// Lines per row group.
const ROW_GROUP: usize = 32_768;
/// The Unix epoch as a Julian day (Parquet dates count days from it).
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// Writes Parquet row groups to `out`.
pub(super) struct ParquetSink<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    rows: Vec<(Rc<WideClaim>, usize)>,
}

fn field(spec: &ColumnSpec) -> Result<Arc<Type>, ParquetError> {
    let (physical, logical) = match spec.kind {
        Kind::Text => (Physical::BYTE_ARRAY, Some(LogicalType::String)),
        Kind::Integer => (Physical::INT32, None),
        Kind::BigInt => (Physical::INT64, None),
        Kind::Decimal => (Physical::INT64, Some(LogicalType::decimal(2, 18))),
        Kind::Date => (Physical::INT32, Some(LogicalType::Date)),
        Kind::Timestamp => (
            Physical::INT64,
            Some(LogicalType::timestamp(true, TimeUnit::MICROS)),
        ),
        Kind::Boolean => (Physical::BOOLEAN, None),
    };
    let mut builder = Type::primitive_type_builder(&spec.name, physical)
        .with_repetition(Repetition::OPTIONAL)
        .with_logical_type(logical);
    if spec.kind == Kind::Decimal {
        builder = builder.with_precision(18).with_scale(2);
    }
    Ok(Arc::new(builder.build()?))
}

impl<W: Write + Send> ParquetSink<W> {
    /// Starts the file.
    pub(super) fn new(out: W) -> Result<Self, ParquetError> {
        let fields = columns().iter().map(field).collect::<Result<Vec<_>, _>>()?;
        let schema = Type::group_type_builder("medical_claim")
            .with_fields(fields)
            .build()?;
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            // Statistics per column chunk (readers prune row groups with them), not per
            // page: the per-page ones cost more than they save here.
            .set_statistics_enabled(EnabledStatistics::Chunk);
        // Identifiers are nearly all distinct: a dictionary would only be built and
        // thrown away.
        for name in ["claim_id", "person_id", "member_id", "x_claim_version_id"] {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(name), false);
        }
        let properties = properties
            .set_created_by(concat!("claimgate ", env!("CARGO_PKG_VERSION")).to_owned())
            .build();
        Ok(Self {
            writer: SerializedFileWriter::new(out, Arc::new(schema), Arc::new(properties))?,
            rows: Vec::with_capacity(ROW_GROUP),
        })
    }

    /// Adds every line of `claim`; writes a row group when one is full.
    pub(super) fn claim(&mut self, claim: WideClaim, source: &str) -> Result<(), ParquetError> {
        let claim = Rc::new(claim);
        for line in 0..claim.lines() {
            self.rows.push((Rc::clone(&claim), line));
        }
        if self.rows.len() >= ROW_GROUP {
            self.flush(source)?;
        }
        Ok(())
    }

    fn flush(&mut self, source: &str) -> Result<(), ParquetError> {
        let mut group = self.writer.next_row_group()?;
        for spec in columns() {
            let mut column = group
                .next_column()?
                .ok_or_else(|| ParquetError::General("schema has fewer columns".into()))?;
            write_column(&mut column, spec, &self.rows, source)?;
            column.close()?;
        }
        group.close()?;
        self.rows.clear();
        Ok(())
    }

    /// Writes the last row group and the footer; returns the writer.
    pub(super) fn finish(mut self, source: &str) -> Result<W, ParquetError> {
        if !self.rows.is_empty() {
            self.flush(source)?;
        }
        self.writer.into_inner()
    }
}

/// One column of a row group: its values and definition levels (1 present, 0 null).
fn write_column(
    column: &mut SerializedColumnWriter<'_>,
    spec: &ColumnSpec,
    rows: &[(Rc<WideClaim>, usize)],
    source: &str,
) -> Result<(), ParquetError> {
    let mut defs: Vec<i16> = Vec::with_capacity(rows.len());
    let cells = rows
        .iter()
        .map(|(claim, line)| claim.cell(spec.column, *line, source));
    macro_rules! typed {
        ($ty:ty, $pattern:pat => $value:expr) => {{
            let mut values = Vec::with_capacity(rows.len());
            for cell in cells {
                match cell {
                    $pattern => {
                        values.push($value);
                        defs.push(1);
                    }
                    _ => defs.push(0),
                }
            }
            column
                .typed::<$ty>()
                .write_batch(&values, Some(&defs), None)?;
        }};
    }
    match spec.kind {
        Kind::Text => typed!(ByteArrayType, Cell::Text(s) => ByteArray::from(s)),
        Kind::Integer => {
            typed!(Int32Type, Cell::Int(n) => i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX }))
        }
        Kind::BigInt => typed!(Int64Type, Cell::Int(n) => n),
        Kind::Decimal => typed!(Int64Type, Cell::Cents(n) => n),
        Kind::Date => typed!(Int32Type, Cell::Date(d) => d.to_julian_day() - UNIX_EPOCH_JULIAN_DAY),
        Kind::Timestamp => typed!(
            Int64Type,
            Cell::Timestamp(t) => i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
        ),
        Kind::Boolean => typed!(BoolType, Cell::Bool(b) => b),
    }
    Ok(())
}
