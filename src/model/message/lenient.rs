//! Field deserializers that accept the documented type and its cheap alternatives, and yield `None` (or an empty
//! value) instead of an error for anything else — so one odd field never costs a message.

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// Any JSON value, reduced to what a scalar field can use. Arrays and objects are skipped, not materialised.
pub(super) enum Scalar {
    U(u64),
    I(i64),
    F(f64),
    S(String),
    B(bool),
    /// `null`, an array or an object.
    Nothing,
}

impl Scalar {
    pub(super) fn into_string(self) -> Option<String> {
        match self {
            Scalar::S(s) => Some(s),
            Scalar::U(n) => Some(n.to_string()),
            Scalar::I(n) => Some(n.to_string()),
            Scalar::F(n) => Some(n.to_string()),
            Scalar::B(b) => Some(b.to_string()),
            Scalar::Nothing => None,
        }
    }

    pub(super) fn to_u64(&self) -> Option<u64> {
        match *self {
            Scalar::U(n) => Some(n),
            Scalar::I(n) => u64::try_from(n).ok(),
            Scalar::F(f) => float_to_int(f).and_then(|n| u64::try_from(n).ok()),
            Scalar::S(ref s) => {
                let s = s.trim();
                s.parse()
                    .ok()
                    .or_else(|| float_to_int(s.parse().ok()?).and_then(|n| u64::try_from(n).ok()))
            }
            Scalar::B(_) | Scalar::Nothing => None,
        }
    }

    pub(super) fn to_i64(&self) -> Option<i64> {
        match *self {
            Scalar::U(n) => i64::try_from(n).ok(),
            Scalar::I(n) => Some(n),
            Scalar::F(f) => float_to_int(f).and_then(|n| i64::try_from(n).ok()),
            Scalar::S(ref s) => {
                let s = s.trim();
                s.parse()
                    .ok()
                    .or_else(|| float_to_int(s.parse().ok()?).and_then(|n| i64::try_from(n).ok()))
            }
            Scalar::B(_) | Scalar::Nothing => None,
        }
    }

    fn to_f64(&self) -> Option<f64> {
        match *self {
            // Precision loss above 2^53 is irrelevant for the f64 fields (coordinates).
            Scalar::U(n) => Some(n as f64),
            Scalar::I(n) => Some(n as f64),
            Scalar::F(f) => Some(f),
            Scalar::S(ref s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            Scalar::B(_) | Scalar::Nothing => None,
        }
    }

    fn to_bool(&self) -> Option<bool> {
        match *self {
            Scalar::B(b) => Some(b),
            Scalar::U(n) => Some(n != 0),
            Scalar::I(n) => Some(n != 0),
            Scalar::S(ref s) => match s.trim() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            Scalar::F(_) | Scalar::Nothing => None,
        }
    }
}

/// An integral float (`1714029001123.0`) as an integer; `None` for fractions, NaN and out-of-range values.
fn float_to_int(f: f64) -> Option<i128> {
    // The u64/i64 range is checked by the callers' try_from; i128 holds every integral f64 below 1e20 exactly.
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e20).then_some(f as i128)
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar::B(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar::I(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar::U(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar::F(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar::S(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar::S(v))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Nothing)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar::Nothing)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
                IgnoredAny::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(Scalar::Nothing)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
                IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
                Ok(Scalar::Nothing)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string; numbers and booleans become their JSON text.
pub(super) fn string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Scalar::deserialize(d)?.into_string())
}

/// A u64 from a number or a numeric string.
pub(super) fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_u64())
}

/// A u32 from a number or a numeric string; out-of-range values become `None`.
pub(super) fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(Scalar::deserialize(d)?
        .to_u64()
        .and_then(|n| u32::try_from(n).ok()))
}

/// An i64 from a number or a numeric string.
pub(super) fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_i64())
}

/// An f64 from a number or a numeric string.
pub(super) fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_f64())
}

/// A bool from `true`/`false`, 0/1 or their strings.
pub(super) fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(Scalar::deserialize(d)?.to_bool())
}

/// A string holding JSON: strings are taken as is, objects and arrays are kept as their JSON text.
pub(super) fn json_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Null => None,
        other => Some(other.to_string()),
    })
}

/// A list of strings (non-string elements converted like [`string`], `null`s dropped); a lone string becomes a
/// one-element list; anything else an empty list.
pub(super) fn string_vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(StringVec::deserialize(d)?.0)
}

/// Newtype so that [`string_vec`] can be used with `next_value`.
pub(super) struct StringVec(pub(super) Vec<String>);

impl<'de> Deserialize<'de> for StringVec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringVec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringVec, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(s) = seq.next_element::<Scalar>()? {
                    out.extend(s.into_string());
                }
                Ok(StringVec(out))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringVec, E> {
                Ok(StringVec(vec![v.to_owned()]))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<StringVec, E> {
                Ok(StringVec(vec![v]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<StringVec, A::Error> {
                IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
                Ok(StringVec(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<StringVec, E> {
                Ok(StringVec(Vec::new()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<StringVec, D::Error> {
                StringVec::deserialize(d)
            }
        }
        d.deserialize_any(V)
    }
}

/// A struct read from an object; any other JSON value yields `T::default()`.
///
/// The struct's own fields are lenient too, so only a duplicated key can still fail (serde rejects those for
/// structs); [`super::parse`] then falls back to an untyped payload.
pub(super) fn obj<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Lenient::<T>::deserialize(d)?.0)
}

/// A list of structs (see [`obj`]); anything but an array yields an empty list.
pub(super) fn obj_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Lenient(t)) = seq.next_element::<Lenient<T>>()? {
                out.push(t);
            }
            Ok(out)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            IgnoredAny::deserialize(MapAccessDeserializer::new(map))?;
            Ok(Vec::new())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<T>, D::Error> {
            obj_vec(d)
        }
    }
    d.deserialize_any(V(PhantomData))
}

/// `T` read from an object, or `T::default()` from any other value (see [`obj`]).
pub(super) struct Lenient<T>(pub(super) T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Lenient<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Lenient)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Lenient<T>, A::Error> {
                IgnoredAny::deserialize(SeqAccessDeserializer::new(seq))?;
                Ok(Lenient(T::default()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Lenient<T>, E> {
                Ok(Lenient(T::default()))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Lenient<T>, D::Error> {
                Lenient::deserialize(d)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}
