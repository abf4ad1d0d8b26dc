//! CSV tables: numeric feature columns and one label column.
//!
//! The label column is chosen by its name in the header row or by its index (0-based); every
//! other column is a feature and must hold numbers. Labels are either all integers in
//! `0..=`[`MAX_INTEGER_LABEL`], kept as they are (class names `"0"`, `"1"`, … up to the
//! largest), or anything else, read as class names: the distinct names sorted (as strings),
//! label `i` being `class_names[i]`.
//! Fields are trimmed of surrounding spaces; a gzip-compressed file (`.csv.gz`) is
//! decompressed first.
//!
//! ```no_run
//! use core_tensor::loaders::csv::{CsvOptions, load_csv};
//! // sepal_length,sepal_width,petal_length,petal_width,species
//! let iris = load_csv("iris.csv".as_ref(), &CsvOptions::label("species"))?;
//! assert_eq!(iris.class_names, ["setosa", "versicolor", "virginica"]);
//! // No header, the label in the last of 65 columns:
//! let digits = load_csv("optdigits.tra".as_ref(), &CsvOptions::label(64).no_header())?;
//! # let _ = digits;
//! # Ok::<(), core_tensor::Error>(())
//! ```
//!
//! Errors name the file, and the line and column where there is one: a missing label column
//! (the message lists the header's names), a feature that is not a finite number, an empty
//! field, rows of different lengths, a file with no rows.

use std::collections::BTreeSet;
use std::path::Path;

use tch::Tensor;

use crate::data::TensorDataset;
use crate::io::gunzip_if_needed;
use crate::{Error, Result};

/// A column chosen by its header name or its index (0-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The column whose header is this name (needs a header row).
    Name(String),
    /// The column at this index, 0-based.
    Index(usize),
}

impl From<&str> for Column {
    fn from(name: &str) -> Self {
        Column::Name(name.to_owned())
    }
}

impl From<String> for Column {
    fn from(name: String) -> Self {
        Column::Name(name)
    }
}

impl From<usize> for Column {
    fn from(index: usize) -> Self {
        Column::Index(index)
    }
}

/// How [`load_csv`] reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column.
    pub label: Column,
    /// Whether the first row holds the column names (default true).
    pub has_header: bool,
    /// The field separator (default `b','`).
    pub delimiter: u8,
}

impl CsvOptions {
    /// Labels in `column`, a header row, commas between fields.
    pub fn label(column: impl Into<Column>) -> Self {
        CsvOptions {
            label: column.into(),
            has_header: true,
            delimiter: b',',
        }
    }

    /// The first row is data, not column names.
    pub fn no_header(mut self) -> Self {
        self.has_header = false;
        self
    }

    /// Fields separated by `delimiter` (`b';'`, `b'\t'`).
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// A loaded table: features `Kind::Float` `[N, F]` and labels `Kind::Int64` `[N]`.
#[derive(Debug)]
pub struct CsvTable {
    /// The features as inputs, the labels as targets.
    pub data: TensorDataset,
    /// The class names, indexed by label.
    pub class_names: Vec<String>,
    /// The names of the feature columns, in order (from the header, or `column 3` without
    /// one).
    pub feature_names: Vec<String>,
}

/// Reads the CSV file at `path` (see the [module documentation](self)).
pub fn load_csv(path: &Path, options: &CsvOptions) -> Result<CsvTable> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = gunzip_if_needed(&raw, path)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(options.has_header)
        .delimiter(options.delimiter)
        .trim(csv::Trim::All)
        .from_reader(bytes.as_ref());
    let line_of = |pos: Option<&csv::Position>| pos.map_or(0, csv::Position::line);
    let csv_error = |e: csv::Error| {
        let problem = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                pos,
                expected_len,
                len,
            } => format!(
                "line {}: {len} fields, but the rows before have {expected_len}",
                line_of(pos.as_ref())
            ),
            csv::ErrorKind::Utf8 { pos, .. } => {
                format!("line {}: not valid UTF-8", line_of(pos.as_ref()))
            }
            _ => format!("unreadable CSV: {e}"),
        };
        Error::format(path, problem)
    };
    let header: Option<Vec<String>> = if options.has_header {
        Some(
            reader
                .headers()
                .map_err(csv_error)?
                .iter()
                .map(str::to_owned)
                .collect(),
        )
    } else {
        None
    };
    let mut rows = Vec::new();
    for record in reader.records() {
        rows.push(record.map_err(csv_error)?);
    }
    let width = header
        .as_ref()
        .map(Vec::len)
        .or_else(|| rows.first().map(csv::StringRecord::len))
        .unwrap_or(0);
    let label = match &options.label {
        Column::Index(i) if *i < width => *i,
        Column::Index(i) => {
            return Err(Error::format(
                path,
                format!("no label column {i} (0-based): the rows have {width} columns"),
            ));
        }
        Column::Name(name) => match &header {
            None => {
                return Err(Error::InvalidArgument(format!(
                    "{}: the label column is named {name:?}, but the options say the file has \
                     no header row; give the column's index instead",
                    path.display()
                )));
            }
            Some(h) => h.iter().position(|c| c == name).ok_or_else(|| {
                Error::format(
                    path,
                    format!(
                        "no label column named {name:?}; the header has: {}",
                        h.join(", ")
                    ),
                )
            })?,
        },
    };
    if rows.is_empty() {
        return Err(Error::format(path, "no data rows"));
    }
    if width < 2 {
        return Err(Error::format(
            path,
            "a single column: there is no feature beside the label",
        ));
    }
    let feature_names: Vec<String> = (0..width)
        .filter(|&j| j != label)
        .map(|j| match &header {
            Some(h) => h[j].clone(),
            None => format!("column {j}"),
        })
        .collect();
    let column_name = |j: usize| match &header {
        Some(h) => format!("column {:?}", h[j]),
        None => format!("column {j}"),
    };
    let features_per_row = width - 1;
    let mut features = Vec::with_capacity(rows.len() * features_per_row);
    let mut labels_text = Vec::with_capacity(rows.len());
    for row in &rows {
        let line = line_of(row.position());
        for (j, field) in row.iter().enumerate() {
            if j == label {
                if field.is_empty() {
                    return Err(Error::format(
                        path,
                        format!("line {line}, {}: empty label", column_name(j)),
                    ));
                }
                labels_text.push(field);
                continue;
            }
            let value: f32 = field.parse().map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "line {line}, {}: {field:?} is not a number (features must be numeric; \
                         missing values are not supported)",
                        column_name(j)
                    ),
                )
            })?;
            if !value.is_finite() {
                return Err(Error::format(
                    path,
                    format!("line {line}, {}: {field:?} is not finite", column_name(j)),
                ));
            }
            features.push(value);
        }
    }
    let (labels, class_names) = class_labels(&labels_text);
    let n = rows.len() as i64;
    let inputs = Tensor::f_from_slice(&features)?.f_reshape([n, features_per_row as i64])?;
    let targets = Tensor::f_from_slice(&labels)?;
    tracing::debug!(file = %path.display(), rows = n, features = features_per_row, classes = class_names.len(), "loaded CSV");
    Ok(CsvTable {
        data: TensorDataset::new(inputs, targets)?,
        class_names,
        feature_names,
    })
}

/// The largest integer label kept as it is; a column with larger (or negative) integers is
/// read as class names, so that a column of ids does not make millions of classes.
pub const MAX_INTEGER_LABEL: i64 = 65_535;

/// Labels as class indices and the class names: integers in `0..=`[`MAX_INTEGER_LABEL`] as
/// they are, anything else as sorted names.
fn class_labels(text: &[&str]) -> (Vec<i64>, Vec<String>) {
    let integers: Option<Vec<i64>> = text
        .iter()
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|v| (0..=MAX_INTEGER_LABEL).contains(v))
        })
        .collect();
    if let Some(labels) = integers {
        let max = labels.iter().copied().max().unwrap_or(0);
        return (labels, (0..=max).map(|c| c.to_string()).collect());
    }
    let names: Vec<String> = text
        .iter()
        .map(|s| (*s).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let labels = text
        .iter()
        .map(|s| names.binary_search_by(|n| n.as_str().cmp(s)).unwrap_or(0) as i64)
        .collect();
    (labels, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_labels_stay_and_names_are_sorted() {
        let (l, n) = class_labels(&["2", "0", "2"]);
        assert_eq!(l, [2, 0, 2]);
        assert_eq!(n, ["0", "1", "2"]);
        let (l, n) = class_labels(&["dog", "cat", "dog", "-1"]);
        assert_eq!(l, [2, 1, 2, 0]);
        assert_eq!(n, ["-1", "cat", "dog"]);
    }
}
