//! Prints the national registry's spreadsheet (`relais_testkit::spreadsheet`)
//! for the shipped geography, to measure `relais registry import` on it
//! (docs/performance.md).

fn main() {
    let (csv, _) = relais_testkit::spreadsheet::national_spreadsheet(&relais_testkit::france());
    print!("{csv}");
}
