//! Arrow values as text, JSON and the few column types the stages store, without arrow's
//! compute kernels.
//!
//! `arrow-cast` (with `arrow-ord`, which it needs) was about 130 CPU-seconds of the release
//! build (docs/BENCHMARKS.md, "Build") for what the stages use of it: reading a foreign column
//! as text (a URL or caption written as `LargeUtf8`, `Utf8View`, a dictionary, or a number),
//! carrying other columns as JSON, and the candidate table's integer and list columns. Those
//! conversions are here, one for every reader (`import`, `download`'s URL lists, `curate`).
//!
//! Text forms: integers and booleans as Rust prints them, floats as the shortest digits that
//! read back to the same value (no exponent), dates `YYYY-MM-DD`, times `HH:MM:SS[.f]`, timestamps ISO 8601
//! (`2024-05-01T12:00:00`, with the offset when the column has a time zone), decimals with
//! their scale, binary as lower-case hex, dictionaries as their value, lists and structs as
//! JSON, durations as a number and unit (`90 s`). Null is `None`.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type,
    Decimal256Type, DecimalType, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type,
    UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, Int32Array, Int64Array, ListArray, StringArray,
    builder::{Int32Builder, ListBuilder},
    temporal_conversions::{as_date, as_datetime, as_datetime_with_timezone, as_time},
    timezone::Tz,
};
use arrow_schema::{DataType, Field, TimeUnit};
use serde_json::Value;

/// The value at row `i` as text (`None`: null).
pub fn text(col: &dyn Array, i: usize) -> Option<Cow<'_, str>> {
    use DataType as D;
    if col.is_null(i) {
        return None;
    }
    let owned = |s: String| Some(Cow::Owned(s));
    match col.data_type() {
        D::Utf8 => Some(Cow::Borrowed(col.as_string::<i32>().value(i))),
        D::LargeUtf8 => Some(Cow::Borrowed(col.as_string::<i64>().value(i))),
        D::Utf8View => Some(Cow::Borrowed(col.as_string_view().value(i))),
        D::Null => None,
        D::Boolean => owned(col.as_boolean().value(i).to_string()),
        D::Float16 => owned(float_text(
            col.as_primitive::<Float16Type>().value(i).to_f64(),
        )),
        D::Float32 => owned(float32_text(col.as_primitive::<Float32Type>().value(i))),
        D::Float64 => owned(float_text(col.as_primitive::<Float64Type>().value(i))),
        D::Dictionary(..) => {
            let d = col.as_any_dictionary();
            let key = int_at(d.keys(), i).and_then(|k| usize::try_from(k).ok())?;
            if key >= d.values().len() {
                return None;
            }
            text(d.values().as_ref(), key).map(|c| Cow::Owned(c.into_owned()))
        }
        D::Binary => owned(hex::encode(col.as_binary::<i32>().value(i))),
        D::LargeBinary => owned(hex::encode(col.as_binary::<i64>().value(i))),
        D::BinaryView => owned(hex::encode(col.as_binary_view().value(i))),
        D::FixedSizeBinary(_) => owned(hex::encode(col.as_fixed_size_binary().value(i))),
        D::Date32 => {
            let v = col.as_primitive::<Date32Type>().value(i);
            owned(fmt_or_raw(as_date::<Date32Type>(v.into()), v.into()))
        }
        D::Date64 => {
            let v = col.as_primitive::<Date64Type>().value(i);
            owned(fmt_or_raw(as_date::<Date64Type>(v), v))
        }
        D::Time32(u) => {
            let v: i64 = match u {
                TimeUnit::Second => col.as_primitive::<Time32SecondType>().value(i).into(),
                _ => col.as_primitive::<Time32MillisecondType>().value(i).into(),
            };
            owned(match u {
                TimeUnit::Second => fmt_or_raw(as_time::<Time32SecondType>(v), v),
                _ => fmt_or_raw(as_time::<Time32MillisecondType>(v), v),
            })
        }
        D::Time64(u) => {
            let v = match u {
                TimeUnit::Microsecond => col.as_primitive::<Time64MicrosecondType>().value(i),
                _ => col.as_primitive::<Time64NanosecondType>().value(i),
            };
            owned(match u {
                TimeUnit::Microsecond => fmt_or_raw(as_time::<Time64MicrosecondType>(v), v),
                _ => fmt_or_raw(as_time::<Time64NanosecondType>(v), v),
            })
        }
        D::Timestamp(u, tz) => owned(match u {
            TimeUnit::Second => timestamp::<TimestampSecondType>(col, i, tz.as_deref()),
            TimeUnit::Millisecond => timestamp::<TimestampMillisecondType>(col, i, tz.as_deref()),
            TimeUnit::Microsecond => timestamp::<TimestampMicrosecondType>(col, i, tz.as_deref()),
            TimeUnit::Nanosecond => timestamp::<TimestampNanosecondType>(col, i, tz.as_deref()),
        }),
        D::Duration(u) => owned(match u {
            TimeUnit::Second => format!("{} s", col.as_primitive::<DurationSecondType>().value(i)),
            TimeUnit::Millisecond => {
                format!(
                    "{} ms",
                    col.as_primitive::<DurationMillisecondType>().value(i)
                )
            }
            TimeUnit::Microsecond => {
                format!(
                    "{} us",
                    col.as_primitive::<DurationMicrosecondType>().value(i)
                )
            }
            TimeUnit::Nanosecond => {
                format!(
                    "{} ns",
                    col.as_primitive::<DurationNanosecondType>().value(i)
                )
            }
        }),
        D::Decimal32(p, s) => owned(Decimal32Type::format_decimal(
            col.as_primitive::<Decimal32Type>().value(i),
            *p,
            *s,
        )),
        D::Decimal64(p, s) => owned(Decimal64Type::format_decimal(
            col.as_primitive::<Decimal64Type>().value(i),
            *p,
            *s,
        )),
        D::Decimal128(p, s) => owned(Decimal128Type::format_decimal(
            col.as_primitive::<Decimal128Type>().value(i),
            *p,
            *s,
        )),
        D::Decimal256(p, s) => owned(Decimal256Type::format_decimal(
            col.as_primitive::<Decimal256Type>().value(i),
            *p,
            *s,
        )),
        D::UInt64 => owned(col.as_primitive::<UInt64Type>().value(i).to_string()),
        t if t.is_integer() => int_at(col, i).map(|v| Cow::Owned(v.to_string())),
        D::List(_) | D::LargeList(_) | D::FixedSizeList(..) | D::Struct(_) => {
            owned(json(col, i).to_string())
        }
        other => owned(format!("<{other} value>")),
    }
}

/// The value at row `i` as JSON: null, booleans, numbers (non-finite floats as null), strings,
/// lists as arrays, structs as objects, anything else as its [`text`].
pub fn json(col: &dyn Array, i: usize) -> Value {
    use DataType as D;
    if col.is_null(i) {
        return Value::Null;
    }
    match col.data_type() {
        D::Boolean => Value::Bool(col.as_boolean().value(i)),
        D::UInt64 => col.as_primitive::<UInt64Type>().value(i).into(),
        t if t.is_integer() => int_at(col, i).map(Value::from).unwrap_or(Value::Null),
        D::Float16 | D::Float32 | D::Float64 => text(col, i)
            .and_then(|t| t.parse::<f64>().ok())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        D::List(_) => {
            let v = col.as_list::<i32>().value(i);
            Value::Array((0..v.len()).map(|j| json(v.as_ref(), j)).collect())
        }
        D::LargeList(_) => {
            let v = col.as_list::<i64>().value(i);
            Value::Array((0..v.len()).map(|j| json(v.as_ref(), j)).collect())
        }
        D::FixedSizeList(..) => {
            let v = col.as_fixed_size_list().value(i);
            Value::Array((0..v.len()).map(|j| json(v.as_ref(), j)).collect())
        }
        D::Struct(fields) => {
            let s = col.as_struct();
            Value::Object(
                fields
                    .iter()
                    .zip(s.columns())
                    .map(|(f, c)| (f.name().clone(), json(c.as_ref(), i)))
                    .collect(),
            )
        }
        _ => text(col, i)
            .map(|t| Value::String(t.into_owned()))
            .unwrap_or(Value::Null),
    }
}

/// A signed or unsigned integer (up to `i64`), a bool as 0/1, a finite float truncated towards
/// zero, or a string that parses as an integer; `None` otherwise (null, out of range, not a
/// number).
pub fn int_at(col: &dyn Array, i: usize) -> Option<i64> {
    use DataType as D;
    if col.is_null(i) {
        return None;
    }
    fn p<T: ArrowPrimitiveType>(col: &dyn Array, i: usize) -> T::Native {
        col.as_primitive::<T>().value(i)
    }
    match col.data_type() {
        D::Int8 => Some(p::<Int8Type>(col, i).into()),
        D::Int16 => Some(p::<Int16Type>(col, i).into()),
        D::Int32 => Some(p::<Int32Type>(col, i).into()),
        D::Int64 => Some(p::<Int64Type>(col, i)),
        D::UInt8 => Some(p::<UInt8Type>(col, i).into()),
        D::UInt16 => Some(p::<UInt16Type>(col, i).into()),
        D::UInt32 => Some(p::<UInt32Type>(col, i).into()),
        D::UInt64 => i64::try_from(p::<UInt64Type>(col, i)).ok(),
        D::Boolean => Some(col.as_boolean().value(i).into()),
        D::Float16 | D::Float32 | D::Float64 => {
            let f = match col.data_type() {
                D::Float16 => p::<Float16Type>(col, i).to_f64(),
                D::Float32 => p::<Float32Type>(col, i).into(),
                _ => p::<Float64Type>(col, i),
            };
            // i64::MAX as f64 rounds up to 2^63, which is out of range
            (f.is_finite() && f >= i64::MIN as f64 && f < i64::MAX as f64).then(|| f.trunc() as i64)
        }
        D::Utf8 | D::LargeUtf8 | D::Utf8View | D::Dictionary(..) => {
            text(col, i).and_then(|t| t.trim().parse().ok())
        }
        _ => None,
    }
}

/// A column as `Utf8` (every value as its [`text`]).
pub fn to_utf8(col: &dyn Array) -> StringArray {
    if let Some(s) = col.as_string_opt::<i32>() {
        return s.clone();
    }
    (0..col.len()).map(|i| text(col, i)).collect()
}

/// A column as `Int32` or `Int64` (`wide`) through [`int_at`]; a value that is not an integer
/// in range becomes null, as arrow's safe cast does.
pub fn to_int(col: &dyn Array, wide: bool) -> ArrayRef {
    if wide {
        Arc::new(
            (0..col.len())
                .map(|i| int_at(col, i))
                .collect::<Int64Array>(),
        )
    } else {
        Arc::new(
            (0..col.len())
                .map(|i| int_at(col, i).and_then(|v| i32::try_from(v).ok()))
                .collect::<Int32Array>(),
        )
    }
}

/// A list column (`List`, `LargeList` or `FixedSizeList` of integers) as `List<Int32>` with
/// non-null items named `item`; `None` for any other column or an item that is not an `i32`.
pub fn to_int32_list(col: &dyn Array) -> Option<ListArray> {
    let field = Arc::new(Field::new("item", DataType::Int32, false));
    let mut b = ListBuilder::new(Int32Builder::new()).with_field(field);
    for i in 0..col.len() {
        if col.is_null(i) {
            b.append_null();
            continue;
        }
        let items: ArrayRef = match col.data_type() {
            DataType::List(_) => col.as_list::<i32>().value(i),
            DataType::LargeList(_) => col.as_list::<i64>().value(i),
            DataType::FixedSizeList(..) => col.as_fixed_size_list().value(i),
            _ => return None,
        };
        for j in 0..items.len() {
            let v = int_at(items.as_ref(), j).and_then(|v| i32::try_from(v).ok())?;
            b.values().append_value(v);
        }
        b.append(true);
    }
    Some(b.finish())
}

fn fmt_or_raw<T: std::fmt::Display>(v: Option<T>, raw: i64) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| raw.to_string())
}

fn timestamp<T: ArrowPrimitiveType<Native = i64>>(
    col: &dyn Array,
    i: usize,
    tz: Option<&str>,
) -> String {
    let v = col.as_primitive::<T>().value(i);
    match tz.and_then(|z| z.parse::<Tz>().ok()) {
        Some(z) => as_datetime_with_timezone::<T>(v, z)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| v.to_string()),
        None => as_datetime::<T>(v)
            .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
            .unwrap_or_else(|| v.to_string()),
    }
}

/// The shortest digits that read back as `f`, without an exponent (`1.5`, `100`, `0.0000001`),
/// or `NaN`, `inf`, `-inf`.
fn float_text(f: f64) -> String {
    f.to_string()
}

/// As [`float_text`], with the digits of the `f32` (`0.1`, not `0.10000000149011612`).
fn float32_text(f: f32) -> String {
    f.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array,
        Float64Array, LargeStringArray, StringViewArray, StructArray, TimestampSecondArray,
        UInt64Array, types::Int8Type as K,
    };

    fn t(a: &dyn Array, i: usize) -> Option<String> {
        text(a, i).map(|c| c.into_owned())
    }

    #[test]
    fn strings_of_every_layout_read_as_the_same_text() {
        let want = [Some("a"), None, Some("ünï")];
        let u = StringArray::from(want.to_vec());
        let l = LargeStringArray::from(want.to_vec());
        let v = StringViewArray::from(want.to_vec());
        let d: DictionaryArray<K> = want.iter().copied().collect();
        for a in [&u as &dyn Array, &l, &v, &d] {
            let got: Vec<Option<String>> = (0..3).map(|i| t(a, i)).collect();
            assert_eq!(got, want.map(|s| s.map(String::from)), "{}", a.data_type());
            assert_eq!(to_utf8(a), u, "{}", a.data_type());
        }
    }

    #[test]
    fn numbers_dates_decimals_and_binary_as_text() {
        assert_eq!(t(&Int64Array::from(vec![-42]), 0).as_deref(), Some("-42"));
        assert_eq!(
            t(&UInt64Array::from(vec![u64::MAX]), 0).as_deref(),
            Some("18446744073709551615")
        );
        assert_eq!(t(&Float64Array::from(vec![1.5]), 0).as_deref(), Some("1.5"));
        assert_eq!(
            t(&Float32Array::from(vec![0.1f32]), 0).as_deref(),
            Some("0.1")
        );
        assert_eq!(
            t(&BooleanArray::from(vec![true]), 0).as_deref(),
            Some("true")
        );
        assert_eq!(
            t(&Date32Array::from(vec![19_844]), 0).as_deref(),
            Some("2024-05-01")
        );
        assert_eq!(
            t(&TimestampSecondArray::from(vec![1_714_564_800]), 0).as_deref(),
            Some("2024-05-01T12:00:00")
        );
        assert_eq!(
            t(
                &TimestampSecondArray::from(vec![1_714_564_800]).with_timezone("+02:00"),
                0
            )
            .as_deref(),
            Some("2024-05-01T14:00:00+02:00")
        );
        let d = Decimal128Array::from(vec![12_345])
            .with_precision_and_scale(7, 2)
            .unwrap();
        assert_eq!(t(&d, 0).as_deref(), Some("123.45"));
        assert_eq!(
            t(&BinaryArray::from(vec![&b"\x01\xab"[..]]), 0).as_deref(),
            Some("01ab")
        );
    }

    #[test]
    fn json_keeps_structure_and_drops_non_finite_floats() {
        let f = Float64Array::from(vec![f64::NAN, 2.25]);
        assert_eq!(json(&f, 0), Value::Null);
        assert_eq!(json(&f, 1), serde_json::json!(2.25));
        let s = StructArray::from(vec![(
            Arc::new(Field::new("w", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![7])) as ArrayRef,
        )]);
        assert_eq!(json(&s, 0), serde_json::json!({"w": 7}));
        assert_eq!(t(&s, 0).as_deref(), Some(r#"{"w":7}"#));
    }

    #[test]
    fn integers_narrow_with_nulls_out_of_range_as_arrow_safe_cast() {
        let a = Int64Array::from(vec![Some(1), Some(i64::from(i32::MAX) + 1), None]);
        let n = to_int(&a, false);
        let n = n.as_primitive::<Int32Type>();
        assert_eq!(n.iter().collect::<Vec<_>>(), vec![Some(1), None, None]);
        let s = StringArray::from(vec!["12", "x"]);
        let w = to_int(&s, true);
        assert_eq!(
            w.as_primitive::<Int64Type>().iter().collect::<Vec<_>>(),
            vec![Some(12), None]
        );
        let f = Float64Array::from(vec![2.9, -2.9, f64::INFINITY]);
        assert_eq!(
            (0..3).map(|i| int_at(&f, i)).collect::<Vec<_>>(),
            vec![Some(2), Some(-2), None]
        );
    }

    #[test]
    fn lists_of_any_integer_width_become_int32_lists() {
        use arrow_array::builder::{Int64Builder, LargeListBuilder};
        let mut b = LargeListBuilder::new(Int64Builder::new());
        b.values().append_value(3);
        b.values().append_value(4);
        b.append(true);
        b.append_null();
        let l = to_int32_list(&b.finish()).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(
            l.value(0).as_primitive::<Int32Type>().values().to_vec(),
            vec![3, 4]
        );
        assert!(l.is_null(1));
        assert!(to_int32_list(&StringArray::from(vec!["x"])).is_none());
    }
}
