//! Transferability estimates: reference values from `reference/transferability_reference.py`
//! (NumPy, written from the papers), hand-computed cases, and properties.

use core_tensor::Error;
use serde_json::Value;
use tch::{Device, Kind, Tensor};
use transfer::transferability::{
    h_score, kendall_tau, ledoit_wolf_shrinkage, leep, log_me, shrunk_h_score, spearman,
};

fn reference() -> Value {
    serde_json::from_str(include_str!("reference/transferability.json")).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn usize_of(case: &Value, key: &str) -> usize {
    case[key].as_u64().unwrap() as usize
}

/// A reference case's `[rows, cols]` matrix under `key` and its labels.
fn case_tensors(case: &Value, key: &str, rows: &str, cols: &str) -> (Tensor, Tensor) {
    let shape = [usize_of(case, rows) as i64, usize_of(case, cols) as i64];
    let x = Tensor::from_slice(&floats(&case[key])).view(shape);
    (x, Tensor::from_slice(&ints(&case["labels"])))
}

fn assert_invalid<T: std::fmt::Debug>(result: core_tensor::Result<T>, needle: &str) {
    match result {
        Err(Error::InvalidArgument(msg)) => {
            assert!(
                msg.contains(needle),
                "message {msg:?} should mention {needle:?}"
            )
        }
        other => panic!("expected InvalidArgument mentioning {needle:?}, got {other:?}"),
    }
}

fn assert_close(got: f64, want: f64, tol: f64, what: &str) {
    assert!(
        (got - want).abs() < tol,
        "{what}: got {got}, want {want} (difference {:e})",
        (got - want).abs()
    );
}

fn labels_cycling(n: i64, classes: i64) -> Tensor {
    Tensor::arange(n, (Kind::Int64, Device::Cpu)).remainder(classes)
}

// --- LogME -------------------------------------------------------------------------------

fn logme_against_reference(name: &str) {
    let r = reference();
    let case = &r["logme"][name];
    let (features, labels) = case_tensors(case, "features", "n", "d");
    let classes = usize_of(case, "classes");
    let want = case["logme"].as_f64().unwrap();
    let got = log_me(&features, &labels, classes).unwrap();
    assert_close(got, want, 1e-6, name);
    // The reference features are f32 values: the f32 path must give the same score.
    let got32 = log_me(&features.to_kind(Kind::Float), &labels, classes).unwrap();
    assert_close(got32, want, 1e-6, name);
}

#[test]
fn logme_matches_numpy_when_n_exceeds_d() {
    logme_against_reference("n_gt_d");
}

#[test]
fn logme_matches_numpy_when_n_is_below_d() {
    logme_against_reference("n_lt_d");
}

#[test]
fn logme_matches_numpy_on_separable_classes() {
    logme_against_reference("n_gt_d_separable");
}

#[test]
fn logme_prefers_features_that_encode_the_labels() {
    tch::manual_seed(7);
    let (n, classes) = (90, 3);
    let labels = labels_cycling(n, classes);
    let onehot = labels.one_hot(classes).to_kind(Kind::Double);
    let informative = &onehot + Tensor::randn([n, classes], (Kind::Double, Device::Cpu)) * 0.1;
    let random = Tensor::randn([n, classes], (Kind::Double, Device::Cpu));
    let good = log_me(&informative, &labels, classes as usize).unwrap();
    let bad = log_me(&random, &labels, classes as usize).unwrap();
    assert!(
        good > bad + 1.0,
        "one-hot + noise scored {good}, random {bad}"
    );
}

#[test]
fn logme_rejects_a_class_without_examples() {
    let features = Tensor::randn([6, 2], (Kind::Float, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1, 0, 1, 0, 1]);
    assert_invalid(log_me(&features, &labels, 3), "class 2");
}

#[test]
fn logme_rejects_all_zero_features() {
    let features = Tensor::zeros([6, 3], (Kind::Float, Device::Cpu));
    assert_invalid(
        log_me(&features, &labels_cycling(6, 2), 2),
        "no finite maximum",
    );
}

// --- LEEP --------------------------------------------------------------------------------

#[test]
fn leep_hand_computed() {
    // P(y, z) = [[0.375, 0.125], [0.125, 0.375]], P(z) = [0.5, 0.5],
    // P(y | z) = [[0.75, 0.25], [0.25, 0.75]]; per example Σ_z P(yᵢ | z) θᵢ_z:
    // 0.75·0.9 + 0.25·0.1 = 0.70, 0.75·0.6 + 0.25·0.4 = 0.55,
    // 0.25·0.2 + 0.75·0.8 = 0.65, 0.25·0.3 + 0.75·0.7 = 0.60.
    let probs = Tensor::from_slice(&[0.9f64, 0.1, 0.6, 0.4, 0.2, 0.8, 0.3, 0.7]).view([4, 2]);
    let labels = Tensor::from_slice(&[0i64, 0, 1, 1]);
    let want = (0.70f64.ln() + 0.55f64.ln() + 0.65f64.ln() + 0.60f64.ln()) / 4.0;
    assert_close(leep(&probs, &labels, 2).unwrap(), want, 1e-12, "LEEP");
}

#[test]
fn leep_matches_numpy() {
    let r = reference();
    let case = &r["leep"]["random"];
    let (probs, labels) = case_tensors(case, "probs", "n", "source_classes");
    let got = leep(&probs, &labels, usize_of(case, "target_classes")).unwrap();
    assert_close(got, case["leep"].as_f64().unwrap(), 1e-6, "LEEP");
}

#[test]
fn leep_of_uniform_predictions_is_the_mean_log_label_prior() {
    // Unbalanced labels: P(y) = 3/6, 1/6, 2/6.
    let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 2, 2]);
    let uniform = Tensor::full([6, 4], 0.25, (Kind::Float, Device::Cpu));
    let want = (3.0 * 0.5f64.ln() + (1.0f64 / 6.0).ln() + 2.0 * (2.0f64 / 6.0).ln()) / 6.0;
    assert_close(leep(&uniform, &labels, 3).unwrap(), want, 1e-9, "uniform");
}

#[test]
fn leep_of_predictions_that_determine_the_label_beats_uniform() {
    let labels = Tensor::from_slice(&[0i64, 0, 0, 1, 2, 2]);
    // Source class z = 2 - y: a relabelling, so P(y | z) is 0 or 1.
    let determined = (labels.neg() + 2).one_hot(3).to_kind(Kind::Float);
    let score = leep(&determined, &labels, 3).unwrap();
    assert_close(score, 0.0, 1e-12, "determined");
    let uniform = Tensor::full([6, 3], 1.0 / 3.0, (Kind::Float, Device::Cpu));
    assert!(leep(&uniform, &labels, 3).unwrap() < score - 0.5);
}

#[test]
fn leep_rejects_logits() {
    let labels = Tensor::from_slice(&[0i64, 1, 1]);
    let negative = Tensor::from_slice(&[1.5f32, -0.5, 0.2, 0.8, 0.4, 0.6]).view([3, 2]);
    assert_invalid(leep(&negative, &labels, 2), "negative entry");
    let unnormalised = Tensor::from_slice(&[0.5f32, 0.5, 2.0, 3.0, 0.4, 0.6]).view([3, 2]);
    assert_invalid(leep(&unnormalised, &labels, 2), "row 1 sums to 5");
}

// --- H-score -----------------------------------------------------------------------------

#[test]
fn h_score_matches_numpy() {
    let r = reference();
    let case = &r["h_score"]["random"];
    let (features, labels) = case_tensors(case, "features", "n", "d");
    let got = h_score(&features, &labels, usize_of(case, "classes")).unwrap();
    assert_close(got, case["h_score"].as_f64().unwrap(), 1e-6, "H-score");
}

#[test]
fn shrunk_h_score_matches_numpy_and_scikit_learn() {
    let r = reference();
    for name in ["n_lt_d", "n_gt_d"] {
        let case = &r["shrunk_h_score"][name];
        let (features, labels) = case_tensors(case, "features", "n", "d");
        let classes = usize_of(case, "classes");
        let centred = &features - features.mean_dim(0, true, Kind::Double);
        let a = ledoit_wolf_shrinkage(&centred).unwrap();
        assert_close(a, case["shrinkage"].as_f64().unwrap(), 1e-9, "shrinkage");
        let got = shrunk_h_score(&features, &labels, classes).unwrap();
        assert_close(got, case["shrunk_h_score"].as_f64().unwrap(), 1e-6, name);
        let plain = h_score(&features, &labels, classes).unwrap();
        assert_close(plain, case["h_score"].as_f64().unwrap(), 1e-6, name);
    }
    // Fewer examples (20) than dimensions (40): the plain score saturates at C − 1 = 3 (the
    // inverse covariance fits the sample), the shrunk one does not.
    let case = &r["shrunk_h_score"]["n_lt_d"];
    assert_close(case["h_score"].as_f64().unwrap(), 3.0, 1e-9, "saturated");
    assert!(case["shrunk_h_score"].as_f64().unwrap() < 2.9);
}

#[test]
fn shrunk_h_score_without_shrinkage_is_the_h_score() {
    // Many examples, few dimensions: α is near 0 and the scores nearly agree; constant
    // features score 0 and have no shrinkage.
    tch::manual_seed(5);
    let (n, d, classes) = (4000, 3, 3);
    let labels = labels_cycling(n, classes);
    let shift = labels.one_hot(classes).to_kind(Kind::Double) * 2.0;
    let features = Tensor::randn([n, d], (Kind::Double, Device::Cpu)) + shift;
    let a = ledoit_wolf_shrinkage(&(&features - features.mean_dim(0, true, Kind::Double))).unwrap();
    assert!((0.0..0.01).contains(&a), "shrinkage {a}");
    let plain = h_score(&features, &labels, classes as usize).unwrap();
    let shrunk = shrunk_h_score(&features, &labels, classes as usize).unwrap();
    assert!(
        shrunk <= plain && (plain - shrunk) / plain < 0.02,
        "{shrunk} vs {plain}"
    );
    let constant = Tensor::full([50, 4], 0.1, (Kind::Float, Device::Cpu));
    let labels = labels_cycling(50, 2);
    assert_eq!(shrunk_h_score(&constant, &labels, 2).unwrap(), 0.0);
}

#[test]
fn h_score_of_class_means_is_maximal_and_of_noise_small() {
    tch::manual_seed(11);
    let (n, d, classes) = (200, 5, 3);
    let labels = labels_cycling(n, classes);
    let means = Tensor::randn([classes, d], (Kind::Double, Device::Cpu));
    // Features that are their class mean: all variance is between classes, H = rank = C - 1.
    let class_means = means.index_select(0, &labels);
    let top = h_score(&class_means, &labels, classes as usize).unwrap();
    assert_close(top, (classes - 1) as f64, 1e-9, "class means");
    // Noise independent of the labels: only sampling noise, about (C - 1) D / N = 0.05.
    let noise = Tensor::randn([n, d], (Kind::Double, Device::Cpu));
    let low = h_score(&noise, &labels, classes as usize).unwrap();
    assert!((0.0..0.2).contains(&low), "noise scored {low}");
    // Constant features carry nothing; 0.1 is not exact in binary, so centring leaves noise.
    let constant = Tensor::full([n, d], 0.1, (Kind::Float, Device::Cpu));
    assert_eq!(h_score(&constant, &labels, classes as usize).unwrap(), 0.0);
}

#[test]
fn h_score_is_invariant_to_invertible_linear_maps() {
    tch::manual_seed(3);
    let (n, d, classes) = (80, 4, 4);
    let labels = labels_cycling(n, classes);
    let shift = labels
        .one_hot(classes)
        .to_kind(Kind::Double)
        .narrow(1, 0, d);
    let features = Tensor::randn([n, d], (Kind::Double, Device::Cpu)) + shift;
    let map = Tensor::randn([d, d], (Kind::Double, Device::Cpu))
        + Tensor::eye(d, (Kind::Double, Device::Cpu)) * 3.0;
    let a = h_score(&features, &labels, classes as usize).unwrap();
    let b = h_score(&features.matmul(&map), &labels, classes as usize).unwrap();
    assert!(a > 0.5, "shifted features scored only {a}");
    assert_close(b, a, 1e-9, "after a linear map");
}

// --- Rank correlations -------------------------------------------------------------------

#[test]
fn rank_correlations_of_same_and_reversed_order() {
    let a = [0.3, 1.2, 2.0, 5.5, 7.1];
    let same = [10.0, 20.0, 25.0, 26.0, 90.0];
    let reversed = [9.0, 8.0, 3.0, 2.0, -1.0];
    assert_close(spearman(&a, &same).unwrap(), 1.0, 1e-12, "spearman same");
    assert_close(
        spearman(&a, &reversed).unwrap(),
        -1.0,
        1e-12,
        "spearman reversed",
    );
    assert_close(kendall_tau(&a, &same).unwrap(), 1.0, 1e-12, "kendall same");
    assert_close(
        kendall_tau(&a, &reversed).unwrap(),
        -1.0,
        1e-12,
        "kendall reversed",
    );
}

#[test]
fn rank_correlations_with_two_swaps() {
    // Ranks differ by 1 at four places: ρ = 1 − 6·4 / (5·24) = 0.8.
    // Pairs (1,2) and (3,4) are discordant, 8 of 10 concordant: τ = 6/10.
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    let b = [2.0, 1.0, 4.0, 3.0, 5.0];
    assert_close(spearman(&a, &b).unwrap(), 0.8, 1e-12, "spearman");
    assert_close(kendall_tau(&a, &b).unwrap(), 0.6, 1e-12, "kendall");
}

#[test]
fn rank_correlations_with_a_tie() {
    // Ranks of a: 1, 2.5, 2.5, 4. Centred: a (−1.5, 0, 0, 1.5), b (−1.5, −0.5, 0.5, 1.5);
    // ρ = 4.5 / √(4.5 · 5) = √0.9.
    // τ-b: 5 concordant, 0 discordant, n₀ = 6, one pair tied in a: 5 / √(5 · 6) = √(5/6).
    let a = [1.0, 2.0, 2.0, 3.0];
    let b = [1.0, 2.0, 3.0, 4.0];
    assert_close(spearman(&a, &b).unwrap(), 0.9f64.sqrt(), 1e-12, "spearman");
    assert_close(
        kendall_tau(&a, &b).unwrap(),
        (5.0f64 / 6.0).sqrt(),
        1e-12,
        "kendall",
    );
    // Symmetric in its arguments.
    assert_close(
        kendall_tau(&b, &a).unwrap(),
        (5.0f64 / 6.0).sqrt(),
        1e-12,
        "kendall",
    );
}

#[test]
fn rank_correlation_errors() {
    assert_invalid(spearman(&[1.0, 2.0], &[1.0]), "different lengths");
    assert_invalid(kendall_tau(&[1.0], &[1.0]), "at least 2");
    assert_invalid(spearman(&[1.0, f64::NAN], &[1.0, 2.0]), "non-finite");
    assert_invalid(spearman(&[3.0, 3.0, 3.0], &[1.0, 2.0, 3.0]), "the same");
    assert_invalid(kendall_tau(&[1.0, 2.0, 3.0], &[0.0, 0.0, 0.0]), "the same");
}

// --- Input checks shared by the estimators -----------------------------------------------

#[test]
fn estimators_reject_malformed_inputs() {
    let features = Tensor::randn([4, 3], (Kind::Float, Device::Cpu));
    let probs = features.softmax(1, Kind::Float);
    let labels = Tensor::from_slice(&[0i64, 1, 0, 1]);
    type Estimator = fn(&Tensor, &Tensor, usize) -> core_tensor::Result<f64>;
    let estimators: [(&str, Estimator); 3] =
        [("log_me", log_me), ("leep", leep), ("h_score", h_score)];
    for (name, estimate) in estimators {
        let input = if name == "leep" { &probs } else { &features };
        // Sanity: the well-formed call works.
        assert!(estimate(input, &labels, 2).is_ok(), "{name}");
        assert_invalid(
            estimate(input, &Tensor::from_slice(&[0i64, 1, 0]), 2),
            "labels must have shape [4]",
        );
        assert_invalid(estimate(&input.view([12]), &labels, 2), "2-D");
        assert_invalid(
            estimate(&input.narrow(0, 0, 1), &labels.narrow(0, 0, 1), 2),
            "at least 2",
        );
        assert_invalid(
            estimate(input, &Tensor::from_slice(&[0i64, 1, 2, 1]), 2),
            "labels[2] = 2",
        );
        assert_invalid(
            estimate(input, &Tensor::from_slice(&[0i64, -1, 0, 1]), 2),
            "labels[1] = -1",
        );
        assert_invalid(estimate(input, &labels.to_kind(Kind::Float), 2), "integer");
        assert_invalid(
            estimate(&input.to_kind(Kind::Int64), &labels, 2),
            "floating-point",
        );
        assert_invalid(estimate(input, &labels, 0), "at least 1");
        let with_nan = input.copy();
        let _ = with_nan.get(2).get(1).fill_(f64::NAN);
        assert_invalid(estimate(&with_nan, &labels, 2), "[2, 1] is NaN");
    }
}
