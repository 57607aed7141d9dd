//! `runs.csv`: parsing and the median [min-max] of each flow count and device under test.
//!
//! Columns are found by their header names, so the script may add columns without breaking
//! this reader. Empty cells and `nan` are missing figures (a run whose device gave no cycle
//! count), not errors.

use std::collections::BTreeMap;

/// What is wrong with a `runs.csv`, with the line (1-based, the header is line 1) to look at.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Error {
    /// The file has no header line.
    #[error("empty file: expected a header line naming flows,rep,dut,sink_mpps,...")]
    Empty,
    /// A column the plot needs is not in the header.
    #[error("line 1: no column `{0}` in the header")]
    MissingColumn(&'static str),
    /// A line has fewer fields than the header.
    #[error("line {line}: {found} fields, the header has {expected}")]
    ShortLine {
        /// The line, counted from 1.
        line: usize,
        /// Fields on that line.
        found: usize,
        /// Fields in the header.
        expected: usize,
    },
    /// A field that must be a number is not one.
    #[error("line {line}: column `{column}` is `{value}`, not a number")]
    BadNumber {
        /// The line, counted from 1.
        line: usize,
        /// The column's name.
        column: &'static str,
        /// The field as written.
        value: String,
    },
}

/// One run: one device under test at one flow count in one repetition.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Flows the generator cycles through.
    pub flows: u64,
    /// Repetition, from 1.
    pub rep: u32,
    /// Device under test (`appliance`, `io`, `5tswap`, `ovs`).
    pub dut: String,
    /// Millions of packets a second back at the generator (median of the run's seconds).
    pub sink_mpps: Option<f64>,
    /// The device's busy TSC cycles per packet over the window.
    pub cycles_per_pkt: Option<f64>,
}

/// Parses `runs.csv`: a header line, then one comma-separated line per run.
pub fn parse(text: &str) -> Result<Vec<Run>, Error> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines.next().ok_or(Error::Empty)?;
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &'static str| {
        names
            .iter()
            .position(|n| *n == name)
            .ok_or(Error::MissingColumn(name))
    };
    let (flows, rep, dut) = (col("flows")?, col("rep")?, col("dut")?);
    let (sink, cycles) = (col("sink_mpps")?, col("dut_cycles_per_pkt")?);

    lines
        .map(|(i, l)| {
            let line = i + 1;
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            if f.len() < names.len() {
                return Err(Error::ShortLine {
                    line,
                    found: f.len(),
                    expected: names.len(),
                });
            }
            let bad = |column, value: &str| Error::BadNumber {
                line,
                column,
                value: value.into(),
            };
            Ok(Run {
                flows: f[flows].parse().map_err(|_| bad("flows", f[flows]))?,
                rep: f[rep].parse().map_err(|_| bad("rep", f[rep]))?,
                dut: f[dut].to_string(),
                sink_mpps: figure(f[sink]).map_err(|_| bad("sink_mpps", f[sink]))?,
                cycles_per_pkt: figure(f[cycles])
                    .map_err(|_| bad("dut_cycles_per_pkt", f[cycles]))?,
            })
        })
        .collect()
}

/// A measured figure: empty or `nan` is "not measured".
fn figure(field: &str) -> Result<Option<f64>, std::num::ParseFloatError> {
    if field.is_empty() || field.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    field.parse::<f64>().map(|v| v.is_finite().then_some(v))
}

/// Median and range of a figure over repetitions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The middle value; the mean of the two middle ones for an even count (as Python's
    /// `statistics.median`, which the script's table uses, so plot and table agree).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many values.
    pub n: usize,
}

impl Spread {
    /// The spread of `values`, `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        })
    }
}

/// The figures of one flow count and device under test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cell {
    /// Sink Mpps over the repetitions.
    pub sink_mpps: Option<Spread>,
    /// Cycles per packet over the repetitions.
    pub cycles_per_pkt: Option<Spread>,
}

/// Every run grouped by flow count and device under test.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Flow counts, ascending.
    pub flows: Vec<u64>,
    /// Devices under test in the order the runs first name them (the script's `DUTS`).
    pub duts: Vec<String>,
    cells: BTreeMap<(u64, usize), Cell>,
}

impl Summary {
    /// Groups `runs`.
    pub fn of(runs: &[Run]) -> Summary {
        let mut flows: Vec<u64> = runs.iter().map(|r| r.flows).collect();
        flows.sort_unstable();
        flows.dedup();
        let mut duts: Vec<String> = Vec::new();
        for r in runs {
            if !duts.contains(&r.dut) {
                duts.push(r.dut.clone());
            }
        }
        let mut cells = BTreeMap::new();
        for &f in &flows {
            for (d, dut) in duts.iter().enumerate() {
                let rs = || runs.iter().filter(|r| r.flows == f && &r.dut == dut);
                if rs().next().is_none() {
                    continue;
                }
                let cell = Cell {
                    sink_mpps: Spread::of(rs().filter_map(|r| r.sink_mpps)),
                    cycles_per_pkt: Spread::of(rs().filter_map(|r| r.cycles_per_pkt)),
                };
                cells.insert((f, d), cell);
            }
        }
        Summary { flows, duts, cells }
    }

    /// The figures of `flows` and the `dut`-th device, if it ran at that flow count.
    pub fn cell(&self, flows: u64, dut: usize) -> Option<&Cell> {
        self.cells.get(&(flows, dut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The header compare.sh writes, then runs as it writes them (empty cycles: not measured).
    const RUNS: &str = "\
flows,rep,dut,sink_mpps,gen_tx_mpps,dut_mpps,dut_cycles_per_pkt,dut_on_cpu,sessions,load1
1000,1,appliance,5.4400,9.1000,5.4400,456.0000,0.990,1000,1.60
1000,1,io,8.1600,9.2000,8.1600,267.2600,0.990,,1.60
1000,2,appliance,8.9000,12.0000,8.9000,204.0000,0.980,1000,1.70
1000,2,io,12.3300,12.4000,12.3300,,0.990,,1.70
1000000,1,appliance,4.9300,9.0000,4.9300,532.0000,0.980,999999,1.80
1000,3,appliance,5.2900,9.0000,5.2900,466.0000,0.990,1000,1.90
";

    #[test]
    fn parses_by_header_name() {
        let runs = parse(RUNS).unwrap();
        assert_eq!(runs.len(), 6);
        assert_eq!(
            runs[0],
            Run {
                flows: 1000,
                rep: 1,
                dut: "appliance".into(),
                sink_mpps: Some(5.44),
                cycles_per_pkt: Some(456.0)
            }
        );
        assert_eq!(runs[3].cycles_per_pkt, None);
        // Columns in another order, one the plot does not know, nan for a missing figure.
        let moved = "dut,extra,rep,flows,dut_cycles_per_pkt,sink_mpps\novs,x,1,10000,nan,3.5\n";
        let r = &parse(moved).unwrap()[0];
        assert_eq!((r.flows, r.rep, r.dut.as_str()), (10000, 1, "ovs"));
        assert_eq!((r.sink_mpps, r.cycles_per_pkt), (Some(3.5), None));
    }

    #[test]
    fn errors_name_the_line_and_column() {
        assert_eq!(parse(""), Err(Error::Empty));
        assert_eq!(
            parse("flows,rep,dut,sink_mpps\n"),
            Err(Error::MissingColumn("dut_cycles_per_pkt"))
        );
        let hdr = "flows,rep,dut,sink_mpps,dut_cycles_per_pkt\n";
        assert_eq!(
            parse(&format!("{hdr}1000,1,io,8.1\n")),
            Err(Error::ShortLine {
                line: 2,
                found: 4,
                expected: 5
            })
        );
        let e = parse(&format!("{hdr}1000,1,io,8.1,1\n1k,1,io,8.1,1\n")).unwrap_err();
        assert_eq!(
            e,
            Error::BadNumber {
                line: 3,
                column: "flows",
                value: "1k".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "line 3: column `flows` is `1k`, not a number"
        );
        assert!(matches!(
            parse(&format!("{hdr}1000,1,io,fast,1\n")),
            Err(Error::BadNumber {
                column: "sink_mpps",
                ..
            })
        ));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Spread::of([5.44, 8.9, 5.29]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (5.44, 5.29, 8.9, 3));
        let s = Spread::of([4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 4.0, 4));
        assert_eq!(Spread::of([7.0]).unwrap().median, 7.0);
        assert_eq!(Spread::of([]), None);
    }

    #[test]
    fn groups_by_flows_and_dut() {
        let s = Summary::of(&parse(RUNS).unwrap());
        assert_eq!(s.flows, [1000, 1000000]);
        assert_eq!(s.duts, ["appliance", "io"]);
        let app = s.cell(1000, 0).unwrap();
        assert_eq!(app.sink_mpps.unwrap().median, 5.44);
        assert_eq!(app.cycles_per_pkt.unwrap().median, 456.0);
        // io's cycles: one run measured, one not.
        let io = s.cell(1000, 1).unwrap();
        assert_eq!(io.sink_mpps.unwrap().n, 2);
        assert_eq!(io.cycles_per_pkt.unwrap().n, 1);
        // io did not run at 1 M flows.
        assert_eq!(s.cell(1000000, 1), None);
        assert_eq!(s.cell(1000000, 0).unwrap().sink_mpps.unwrap().n, 1);
    }
}
