//! The MNIST loader on the real files, and on damaged copies of them.
mod common;

use vaelab::data::{Mnist, Split, PIXELS, TEST_LEN, TRAIN_LEN};

#[test]
fn real_files_load_with_the_published_counts_and_histogram() {
    let dir = common::mnist_dir();
    let train = Mnist::load(&dir, Split::Train, None).unwrap();
    let test = Mnist::load(&dir, Split::Test, None).unwrap();
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
    let slice = Mnist::load(&dir, Split::Train, Some(2000)).unwrap();
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
    let err = Mnist::load(dir.path(), Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
    assert!(err.contains("truncated"), "{err}");
}

#[test]
fn a_wrong_magic_number_is_an_error_naming_it() {
    let dir = damaged_copy(|b| b[3] = 0x01);
    let err = Mnist::load(dir.path(), Split::Test, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("t10k-images-idx3-ubyte"), "{err}");
    assert!(err.contains("magic number 0x00000801"), "{err}");
}

#[test]
fn a_missing_directory_says_to_run_setup() {
    let dir = tempfile::tempdir().unwrap();
    let err = Mnist::load(dir.path(), Split::Train, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("./scripts/setup"), "{err}");
}
