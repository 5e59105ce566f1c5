//! PgBouncer mode: parameter types sent with each query (unnamed statements).
//!
//! A named prepared statement lives on one server connection, which PgBouncer
//! in transaction mode does not pin, so lido uses `query_typed` (one unnamed
//! Parse/Bind/Execute round trip). Each parameter's PostgreSQL type is taken
//! from its Rust type: the first type below that the value's `ToSql`
//! accepts (`i32` → int4, `i64` → int8, `&str` → text, `Vec<i64>` → int8[], ...).
//! The server casts where the column type differs (`int4_col = $1::int8`).

use bytes::BytesMut;
use tokio_postgres::types::{ToSql, Type, WrongType};

use crate::error::PgError;

/// Probed in order; the first accepted wins.
const CANDIDATES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::OID,
    Type::CHAR,
    Type::TEXT,
    Type::BYTEA,
    Type::JSONB,
    Type::JSON,
    Type::UUID,
    Type::TIMESTAMPTZ,
    Type::TIMESTAMP,
    Type::DATE,
    Type::TIME,
    Type::INTERVAL,
    Type::NUMERIC,
    Type::INET,
    Type::MACADDR,
    Type::POINT,
    Type::BOOL_ARRAY,
    Type::INT2_ARRAY,
    Type::INT4_ARRAY,
    Type::INT8_ARRAY,
    Type::FLOAT4_ARRAY,
    Type::FLOAT8_ARRAY,
    Type::OID_ARRAY,
    Type::TEXT_ARRAY,
    Type::BYTEA_ARRAY,
    Type::JSONB_ARRAY,
    Type::UUID_ARRAY,
    Type::TIMESTAMPTZ_ARRAY,
    Type::TIMESTAMP_ARRAY,
    Type::DATE_ARRAY,
    Type::NUMERIC_ARRAY,
];

/// The PostgreSQL type lido sends for `value`: the first candidate its
/// `ToSql` accepts (`to_sql_checked` fails with `WrongType` for the others).
pub fn infer_type(value: &dyn ToSql) -> Option<Type> {
    let mut buf = BytesMut::new();
    CANDIDATES
        .iter()
        .find(|t| {
            buf.clear();
            match value.to_sql_checked(t, &mut buf) {
                Ok(_) => true,
                Err(e) => !e.is::<WrongType>(),
            }
        })
        .cloned()
}

/// Pairs each parameter with its inferred type.
pub(crate) fn typed<'a>(
    params: &[&'a (dyn ToSql + Sync)],
) -> Result<Vec<(&'a (dyn ToSql + Sync), Type)>, PgError> {
    params
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let ty = infer_type(*p as &dyn ToSql).ok_or(PgError::UnknownParamType { index })?;
            Ok((*p, ty))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_rust_types() {
        assert_eq!(infer_type(&1i32), Some(Type::INT4));
        assert_eq!(infer_type(&1i64), Some(Type::INT8));
        assert_eq!(infer_type(&1i16), Some(Type::INT2));
        assert_eq!(infer_type(&1.5f64), Some(Type::FLOAT8));
        assert_eq!(infer_type(&true), Some(Type::BOOL));
        assert_eq!(infer_type(&"s"), Some(Type::TEXT));
        assert_eq!(infer_type(&String::from("s")), Some(Type::TEXT));
        assert_eq!(infer_type(&Some(3i64)), Some(Type::INT8));
        assert_eq!(infer_type(&None::<&str>), Some(Type::TEXT));
        assert_eq!(infer_type(&vec![1u8, 2]), Some(Type::BYTEA));
        assert_eq!(infer_type(&vec![1i64, 2]), Some(Type::INT8_ARRAY));
        assert_eq!(infer_type(&vec!["a"]), Some(Type::TEXT_ARRAY));
        assert_eq!(infer_type(&7u32), Some(Type::OID));
        assert_eq!(
            infer_type(&std::time::SystemTime::now()),
            Some(Type::TIMESTAMPTZ)
        );
    }

    #[test]
    fn typed_pairs_in_order() {
        let a = 1i32;
        let b = "x";
        let t = typed(&[&a, &b]).unwrap();
        assert_eq!(
            t.iter().map(|(_, ty)| ty.clone()).collect::<Vec<_>>(),
            [Type::INT4, Type::TEXT]
        );
    }
}
