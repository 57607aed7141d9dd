//! `compare-plot RUNS_CSV OUT_SVG [TITLE]`: the chart of one `benches/compare.sh` run.

use compare_plot::{chart, runs};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (csv, svg) = match (args.first(), args.get(1)) {
        (Some(c), Some(s)) if args.len() <= 3 => (c, s),
        _ => {
            eprintln!("usage: compare-plot RUNS_CSV OUT_SVG [TITLE]");
            return ExitCode::from(2);
        }
    };
    let title = args.get(2).map_or(
        "bench-compare: median over repetitions, whiskers min-max",
        |t| t,
    );
    match run(csv, svg, title) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare-plot: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(csv: &str, svg: &str, title: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(csv).map_err(|e| format!("{csv}: {e}"))?;
    let runs = runs::parse(&text).map_err(|e| format!("{csv}: {e}"))?;
    let doc = chart::render(&runs::Summary::of(&runs), title).map_err(|e| e.to_string())?;
    std::fs::write(svg, doc).map_err(|e| format!("{svg}: {e}"))
}
