//! Tunes P2's recipes on the tuning cut of each split ([`experiments::e2e::p2::Tuning`]: part of
//! the training side plays the test set), never on the test set.
//!
//! ```text
//! cargo run --release -p e2e-vs-pipeline --example p2_tune -- CONFIG CONTENDER K,K,.. SEEDS [take|SPEAKER]
//! ```
//! `CONTENDER` is `mfcc`, `log_mel` or `waveform`; one line per run on standard output.

use anyhow::{Context, Result, bail};
use experiments::e2e::common::load_toml;
use experiments::e2e::p2::{P2Config, SplitSpec, Tuning, Which};

fn main() -> std::process::ExitCode {
    experiments::progress::run_main("warn", || run().map_err(|e| format!("{e:#}")))
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        bail!("usage: p2_tune CONFIG CONTENDER K,K,.. SEEDS [take|SPEAKER]...");
    }
    let cfg: P2Config = load_toml(args[0].as_ref())?;
    let which: Which = serde_json::from_str(&format!("{:?}", args[1])).context("contender")?;
    let ks: Vec<usize> = args[2]
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let seeds: u64 = args[3].parse()?;
    let splits: Vec<SplitSpec> = if args.len() > 4 {
        args[4..]
            .iter()
            .map(|s| match s.as_str() {
                "take" => SplitSpec::Take,
                sp => SplitSpec::Speaker {
                    speaker: sp.to_string(),
                },
            })
            .collect()
    } else {
        vec![SplitSpec::Take]
    };
    for split in &splits {
        let t = Tuning::new(&cfg, split)?;
        for &k in &ks {
            let mut accs = Vec::new();
            for seed in 0..seeds {
                let r = t.run(&cfg, which, k, seed, tch::Device::Cpu)?;
                accs.push(r.accuracy);
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "{:?} tune={} k={k} seed={seed} acc={:.3} train_acc={:.3} epochs={} kept={} steps={} loss={:.3}->{:.3} val={:?} early={} {:.1}s",
                        which,
                        t.description,
                        r.accuracy,
                        r.train_accuracy,
                        r.epochs,
                        r.final_epoch,
                        r.steps,
                        r.train_loss.0,
                        r.train_loss.1,
                        r.best_validation.map(|v| (v * 1000.0).round() / 1000.0),
                        r.stopped_early,
                        r.seconds
                    );
                }
            }
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "== {:?} {} k={k}: mean {:.3}",
                    which,
                    t.description,
                    accs.iter().sum::<f64>() / accs.len() as f64
                );
            }
        }
    }
    Ok(())
}
