//! The per-crate verdict and the summary table.

use std::path::{Path, PathBuf};

use crate::annotate::FnSite;
use crate::crates::Crate;
use crate::testrun::Outcome;
use crate::workdir::{Mode, Prepared};

/// Everything learned about one crate.
pub struct CrateReport {
    name: &'static str,
    version: &'static str,
    functions: usize,
    files: usize,
    unparsed: Vec<(PathBuf, String)>,
    plain: Option<Outcome>,
    annotated: Option<Outcome>,
    dep_only: Option<Outcome>,
    /// Functions left plain because a compile error pointed into them, with
    /// the error.
    excluded: Vec<(PathBuf, FnSite, String)>,
    /// The last run with those functions left plain.
    isolated: Option<Outcome>,
    /// The harness itself failed for this crate (download, I/O).
    broken: Option<String>,
}

impl CrateReport {
    /// A report with nothing run yet.
    pub fn new(krate: &Crate) -> Self {
        CrateReport {
            name: krate.name,
            version: krate.version,
            functions: 0,
            files: 0,
            unparsed: Vec::new(),
            plain: None,
            annotated: None,
            dep_only: None,
            excluded: Vec::new(),
            isolated: None,
            broken: None,
        }
    }

    /// A crate the harness could not test.
    pub fn broken(krate: &Crate, why: String) -> Self {
        CrateReport {
            broken: Some(why),
            ..CrateReport::new(krate)
        }
    }

    /// Keeps the result of one mode's run.
    pub fn record(&mut self, mode: Mode, prepared: Prepared, outcome: Outcome) {
        match mode {
            Mode::Plain => self.plain = Some(outcome),
            Mode::DepOnly => self.dep_only = Some(outcome),
            Mode::Annotated => {
                self.functions = prepared.functions;
                self.files = prepared.files;
                self.unparsed = prepared.unparsed;
                self.annotated = Some(outcome);
            }
        }
    }

    /// Keeps the functions left plain in one more round.
    pub fn exclude(&mut self, functions: Vec<(PathBuf, FnSite, String)>) {
        self.excluded.extend(functions);
    }

    /// Keeps the result of the latest run with functions left plain.
    pub fn record_isolated(&mut self, outcome: Outcome) {
        self.isolated = Some(outcome);
    }

    /// The annotated suite ran and passed.
    pub fn annotated_passed(&self) -> bool {
        self.annotated.as_ref().is_some_and(|o| o.success)
    }

    /// Warnings of the annotated build that the published crate does not
    /// have (empty without a baseline run).
    fn new_warnings(&self) -> Vec<&String> {
        match (&self.plain, &self.annotated) {
            (Some(plain), Some(annotated)) => {
                annotated.warnings.difference(&plain.warnings).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Passed: annotated suite green, the same tests as the baseline, no
    /// new warning, every file parsed.
    pub fn passed(&self) -> bool {
        self.broken.is_none()
            && self.annotated_passed()
            && self.new_warnings().is_empty()
            && self.unparsed.is_empty()
            && self.plain.as_ref().map_or(true, |p| {
                let a = self.annotated.as_ref().expect("annotated_passed");
                (p.passed, p.doc_passed) == (a.passed, a.doc_passed)
            })
    }

    fn verdict(&self) -> String {
        if let Some(why) = &self.broken {
            return format!("HARNESS ERROR: {}", why.lines().next().unwrap_or(""));
        }
        if self.plain.as_ref().is_some_and(|p| !p.success) {
            return "BASELINE FAILS (the published crate's suite fails here)".to_owned();
        }
        if self.passed() {
            return "pass".to_owned();
        }
        let Some(a) = &self.annotated else {
            return "not run".to_owned();
        };
        let mut why = Vec::new();
        if !a.errors.is_empty() {
            why.push(format!("{} compile errors", a.errors.len()));
        }
        if a.failed > 0 {
            why.push(format!("{} tests failed", a.failed));
        }
        if !self.new_warnings().is_empty() {
            why.push(format!("{} new warnings", self.new_warnings().len()));
        }
        if !self.unparsed.is_empty() {
            why.push(format!("{} files not parsed", self.unparsed.len()));
        }
        if let Some(p) = self.plain.as_ref().filter(|_| a.success) {
            if (p.passed, p.doc_passed) != (a.passed, a.doc_passed) {
                why.push(format!(
                    "ran {}+{} tests, baseline {}+{}",
                    a.passed, a.doc_passed, p.passed, p.doc_passed
                ));
            }
        }
        if let Some(d) = &self.dep_only {
            why.push(if d.success {
                "dependency alone: ok".to_owned()
            } else {
                format!("dependency alone FAILS ({} errors)", d.errors.len())
            });
        }
        if let Some(i) = &self.isolated {
            why.push(format!(
                "with {} fns left plain: {}",
                self.excluded.len(),
                if i.success {
                    format!("suite passes ({}+{} tests)", i.passed, i.doc_passed)
                } else {
                    format!(
                        "suite FAILS ({} errors, {} tests failed)",
                        i.errors.len(),
                        i.failed
                    )
                }
            ));
        }
        format!("FAIL: {}", why.join(", "))
    }

    /// One line for the progress output.
    pub fn line(&self) -> String {
        format!("   {} {}: {}", self.name, self.version, self.verdict())
    }
}

/// Prints the summary table and, for each failure, its diagnostics.
pub fn print(reports: &[CrateReport], logs: &Path) {
    let total = |f: &dyn Fn(&CrateReport) -> u64| -> u64 { reports.iter().map(f).sum() };
    println!();
    println!("| crate | version | fns annotated | tests (unit+integration) | doctests | plain | annotated | verdict |");
    println!("|---|---|---:|---:|---:|---|---|---|");
    for r in reports {
        let status = |o: &Option<Outcome>| match o {
            None => "-".to_owned(),
            Some(o) if o.success => format!("ok {:.0}s", o.elapsed.as_secs_f64()),
            Some(o) => format!("FAIL {:.0}s", o.elapsed.as_secs_f64()),
        };
        let shown = r
            .annotated
            .as_ref()
            .filter(|a| a.success)
            .or(r.plain.as_ref());
        let (tests, docs) = shown.map_or((0, 0), |o| (o.passed + o.failed, o.doc_passed));
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.name,
            r.version,
            r.functions,
            tests,
            docs,
            status(&r.plain),
            status(&r.annotated),
            r.verdict()
        );
    }
    println!(
        "| total | | {} | {} | {} | | | {} of {} pass |",
        total(&|r| r.functions as u64),
        total(&|r| {
            let o = r
                .annotated
                .as_ref()
                .filter(|a| a.success)
                .or(r.plain.as_ref());
            o.map_or(0, |o| u64::from(o.passed + o.failed))
        }),
        total(&|r| r
            .annotated
            .as_ref()
            .filter(|a| a.success)
            .or(r.plain.as_ref())
            .map_or(0, |o| u64::from(o.doc_passed))),
        reports.iter().filter(|r| r.passed()).count(),
        reports.len()
    );
    println!("(tests: counted from the annotated run when it passed, else from the baseline)");

    for r in reports.iter().filter(|r| !r.passed()) {
        println!("\n## {} {}: {}", r.name, r.version, r.verdict());
        println!("logs: {}/{}-{}.*.log", logs.display(), r.name, r.version);
        for (file, e) in &r.unparsed {
            println!("  not parsed: {}: {e}", file.display());
        }
        if let Some(a) = &r.annotated {
            for e in a.errors.iter().take(40) {
                println!("  {e}");
            }
            if a.errors.len() > 40 {
                println!("  ... and {} more errors", a.errors.len() - 40);
            }
            for t in &a.failed_tests {
                println!("  test failed: {t}");
            }
        }
        for w in r.new_warnings() {
            println!("  new {w}");
        }
        for (file, site, error) in &r.excluded {
            println!(
                "  left plain: fn {} at {}:{} for {error}",
                site.name,
                file.display(),
                site.line
            );
        }
        if let Some(i) = &r.isolated {
            println!(
                "  with {} fns left plain: {}; {} + {} doc tests passed, {} failed, {} errors left",
                r.excluded.len(),
                if i.success {
                    "suite passes"
                } else {
                    "suite FAILS"
                },
                i.passed,
                i.doc_passed,
                i.failed,
                i.errors.len()
            );
            for t in &i.failed_tests {
                println!("    test failed: {t}");
            }
            for e in i.errors.iter().take(20) {
                println!("    {e}");
            }
        }
        if let Some(d) = r.dep_only.as_ref().filter(|d| !d.success) {
            for e in d.errors.iter().take(10) {
                println!("  dependency alone: {e}");
            }
            for t in &d.failed_tests {
                println!("  dependency alone, test failed: {t}");
            }
        }
    }
}
