//! The MNIST and Fashion-MNIST loader on the real files, and on damaged copies of them.
mod common;

use vaelab::data::{Binarize, Dataset, Mnist, Split, PIXELS, TEST_LEN, TRAIN_LEN};

#[test]
fn real_files_load_with_the_published_counts_and_histogram() {
    let dir = common::mnist_dir();
    let train = Mnist::load(Dataset::Mnist, &dir, Split::Train, None).unwrap();
    let test = Mnist::load(Dataset::Mnist, &dir, Split::Test, None).unwrap();
    assert_eq!(train.len(), TRAIN_LEN);
    assert_eq!(test.len(), TEST_LEN);
    assert_eq!(train.images.len(), TRAIN_LEN * PIXELS);
    let mut hist = [0usize; 10];
    for &l in train.labels.iter() {
        hist[l as usize] += 1;
    }
    assert_eq!(
        hist,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert!(train.images.iter().all(|&p| (0.0..=1.0).contains(&p)));
    let max = train.image(0).iter().cloned().fold(0.0f32, f32::max);
    assert_eq!(max, 1.0, "pixels are scaled by 255");
    // The first training image is a 5.
    assert_eq!(train.labels[0], 5);
    let slice = Mnist::load(Dataset::Mnist, &dir, Split::Train, Some(2000)).unwrap();
    assert_eq!(slice.len(), 2000);
    assert_eq!(slice.image(1999), train.image(1999));
}

fn damaged_copy(edit: impl Fn(&mut Vec<u8>)) -> tempfile::TempDir {
    let src = common::mnist_dir();
    let dir = tempfile::tempdir().unwrap();
    for name in ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
        let mut bytes = std::fs::read(src.join(name)).unwrap();
        if name.contains("images") {
            edit(&mut bytes);
        }
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

#[test]
fn a_truncated_file_is_an_error_naming_it() {
    let dir = damaged_copy(|b| b.truncate(b.len() - 100));
    let err = Mnist::load(Dataset::Mnist, dir.path(), Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn a_wrong_magic_number_is_an_error_naming_it() {
    let dir = damaged_copy(|b| b[3] = 0x01);
    let err = Mnist::load(Dataset::Mnist, dir.path(), Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
    assert!(err.contains("magic number 0x00000801"), "{err}");
}

#[test]
fn a_missing_directory_says_to_run_setup() {
    let dir = tempfile::tempdir().unwrap();
    let err = Mnist::load(Dataset::Mnist, dir.path(), Split::Train, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("./scripts/setup"), "{err}");
}

/// Fashion-MNIST's own files load with its counts and balanced classes; MNIST's files are not
/// taken for them (nor the other way round): each data set's published sha256 is checked.
#[test]
fn fashion_mnist_loads_with_its_own_checksums() {
    let mnist = common::mnist_dir();
    let train = Mnist::load(Dataset::FashionMnist, &mnist, Split::Train, None).unwrap();
    let test = Mnist::load(Dataset::FashionMnist, &mnist, Split::Test, None).unwrap();
    assert_eq!((train.len(), test.len()), (TRAIN_LEN, TEST_LEN));
    for (split, per_class) in [(&train, 6000), (&test, 1000)] {
        let mut hist = [0usize; 10];
        for &l in split.labels.iter() {
            hist[l as usize] += 1;
        }
        assert_eq!(hist, [per_class; 10]);
    }
    // The first training image is an ankle boot.
    assert_eq!(train.labels[0], 9);
    assert_eq!(Dataset::FashionMnist.class_name(9), "boot");
    assert_eq!(
        train.sha256["train-images-idx3-ubyte"],
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"
    );
    let fashion_dir = Dataset::FashionMnist.dir(&mnist);
    let err = Mnist::load(Dataset::Mnist, &fashion_dir, Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not the published mnist file"), "{err}");
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
}

/// A run trains on Fashion-MNIST end to end: epochs, evaluation (judged by a Fashion-MNIST
/// classifier) and plots.
#[test]
fn a_run_trains_on_fashion_mnist() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::vaelab(
        tmp.path(),
        &[
            "train",
            "--dataset",
            "fashion-mnist",
            "--limit",
            "1000",
            "--epochs",
            "2",
        ],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    let run = common::only_run(tmp.path());
    assert!(std::fs::read_to_string(run.join("config.toml"))
        .unwrap()
        .contains("dataset = \"fashion-mnist\""));
    assert_eq!(
        vaelab::store::read_metrics(&run.join("metrics.parquet"))
            .unwrap()
            .len(),
        4
    );
    let eval = vaelab::store::read_eval(&run.join("eval.parquet"))
        .unwrap()
        .expect("evaluated");
    let judge = vaelab::store::eval_value(&eval, "judge_accuracy", None, None).unwrap();
    assert!(
        judge > 0.8 && judge < 0.95,
        "a Fashion-MNIST judge: {judge}"
    );
    let id = run.file_name().unwrap().to_str().unwrap();
    let plot = common::vaelab(tmp.path(), &["plot", id]);
    assert!(plot.status.success(), "{}", common::text(&plot));
    assert!(run.join("plots/samples.png").is_file());
}

/// What a run with `binarize` sees before its loader: `threshold` cuts both splits at 0.5;
/// `dynamic` draws the test split once, the same draw every time (its fixed seed), binary, with
/// about the grey levels' mean, and leaves the training split to the loader; `none` keeps both.
#[test]
fn binarisation_cuts_or_draws_the_splits_as_documented() {
    let dir = common::mnist_dir();
    let load = |split, b| Mnist::load_as(Dataset::Mnist, &dir, split, Some(500), b).unwrap();
    let grey = load(Split::Test, Binarize::None);
    let cut = load(Split::Test, Binarize::Threshold);
    for (g, c) in grey.images.iter().zip(cut.images.iter()) {
        assert_eq!(*c, if *g > 0.5 { 1.0 } else { 0.0 });
    }
    assert_eq!(
        load(Split::Train, Binarize::Threshold)
            .images
            .iter()
            .filter(|&&p| p != 0.0 && p != 1.0)
            .count(),
        0
    );
    let drawn = load(Split::Test, Binarize::Dynamic);
    assert!(drawn.images.iter().all(|&p| p == 0.0 || p == 1.0));
    assert_eq!(drawn.images, load(Split::Test, Binarize::Dynamic).images);
    assert_ne!(drawn.images, cut.images);
    let mean = |v: &[f32]| v.iter().map(|&p| f64::from(p)).sum::<f64>() / v.len() as f64;
    assert!((mean(&drawn.images) - mean(&grey.images)).abs() < 0.005);
    assert_eq!(
        load(Split::Train, Binarize::Dynamic).images,
        load(Split::Train, Binarize::None).images
    );
}
