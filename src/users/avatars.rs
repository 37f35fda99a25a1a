//! Avatars people choose in the Mini Program (`<button open-type="chooseAvatar">`): checked by
//! decoding them (PNG, JPEG or WebP, whatever the file is called), cut to a centred square of at
//! most [`MAX_SIDE`] pixels and re-encoded as JPEG, which leaves every piece of metadata the
//! upload carried (EXIF with its GPS position, ICC profiles, comments) behind.
//!
//! The re-encoded bytes are addressed by their SHA-256, so an avatar's URL never changes and
//! may be cached for good. They are kept behind [`AvatarStore`]: [`SeaAvatarStore`] keeps them
//! in the database, so every backend works with no other service; an object store can implement
//! the same trait later.

use std::io::Cursor;

use async_trait::async_trait;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use sea_orm::ActiveValue::Set;
use sea_orm::{DatabaseConnection, DbErr, EntityTrait, SqlErr};
use sha2::{Digest, Sha256};

use entity::avatar;

/// The largest upload accepted (bytes).
pub const MAX_UPLOAD_BYTES: usize = 1024 * 1024;
/// The longest side of a stored avatar (pixels).
pub const MAX_SIDE: u32 = 640;
/// The largest picture decoded (pixels per side): a small file may claim huge dimensions.
const MAX_DECODED_SIDE: u32 = 8192;
/// The memory a decoder may allocate.
const MAX_DECODER_ALLOC: u64 = 256 * 1024 * 1024;
/// The quality of the re-encoded JPEG.
const JPEG_QUALITY: u8 = 85;
/// The stored avatars' media type.
pub const CONTENT_TYPE: &str = "image/jpeg";

/// Why an upload is not an acceptable avatar (each a message for the person who sent it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvatarRefused {
    #[error("the avatar is larger than 1 MB")]
    TooLarge,
    #[error("the avatar is not a PNG, JPEG or WebP picture")]
    NotAnImage,
    #[error("the avatar picture is damaged or too large to decode")]
    Undecodable,
}

/// An avatar ready to store: re-encoded bytes and their address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedAvatar {
    /// Lowercase hex SHA-256 of `bytes`.
    pub content_hash: String,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

/// Check `upload` by decoding it and re-encode it as a square JPEG of at most [`MAX_SIDE`]
/// pixels with no metadata. CPU-bound: call it off the async executor.
pub fn encode_avatar(upload: &[u8]) -> Result<EncodedAvatar, AvatarRefused> {
    if upload.len() > MAX_UPLOAD_BYTES {
        return Err(AvatarRefused::TooLarge);
    }
    let mut reader = ImageReader::new(Cursor::new(upload))
        .with_guessed_format()
        .map_err(|_| AvatarRefused::NotAnImage)?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP) => {}
        _ => return Err(AvatarRefused::NotAnImage),
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_DECODED_SIDE);
    limits.max_image_height = Some(MAX_DECODED_SIDE);
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    reader.limits(limits);
    let picture = reader.decode().map_err(|_| AvatarRefused::Undecodable)?;
    let square = centred_square(picture);
    let side = square.width().min(MAX_SIDE);
    let resized = if side == square.width() {
        square
    } else {
        square.resize_exact(side, side, image::imageops::FilterType::Lanczos3)
    };
    let rgb = flatten_on_white(&resized);
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|_| AvatarRefused::Undecodable)?;
    Ok(EncodedAvatar {
        content_hash: hex::encode(Sha256::digest(&bytes)),
        content_type: CONTENT_TYPE,
        bytes,
    })
}

/// The largest centred square of `picture`.
fn centred_square(picture: DynamicImage) -> DynamicImage {
    let (width, height) = (picture.width(), picture.height());
    if width == height {
        return picture;
    }
    let side = width.min(height);
    picture.crop_imm((width - side) / 2, (height - side) / 2, side, side)
}

/// JPEG has no transparency: transparent parts become white, not black.
fn flatten_on_white(picture: &DynamicImage) -> image::RgbImage {
    let rgba = picture.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (x, y, pixel) in rgba.enumerate_pixels() {
        let [r, g, b, a] = pixel.0;
        let over = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            // c·a + 255·(255 − a), over 255, rounded: at most 255.
            u8::try_from((c * a + 255 * (255 - a) + 127) / 255).unwrap_or(u8::MAX)
        };
        rgb.put_pixel(x, y, image::Rgb([over(r), over(g), over(b)]));
    }
    rgb
}

/// Whether `hash` has the shape of an avatar's address (64 lowercase hex digits).
pub fn is_content_hash(hash: &str) -> bool {
    hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A stored avatar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAvatar {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Where avatars are kept.
#[async_trait]
pub trait AvatarStore: Send + Sync {
    /// Keep `avatar` (storing the same bytes twice is no error).
    async fn put(&self, avatar: &EncodedAvatar, now: i64) -> Result<(), DbErr>;
    /// The avatar stored under `content_hash`, if any.
    async fn get(&self, content_hash: &str) -> Result<Option<StoredAvatar>, DbErr>;
}

/// Avatars in the database (`avatar` table).
#[derive(Clone)]
pub struct SeaAvatarStore {
    db: DatabaseConnection,
}

impl SeaAvatarStore {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

#[async_trait]
impl AvatarStore for SeaAvatarStore {
    async fn put(&self, avatar: &EncodedAvatar, now: i64) -> Result<(), DbErr> {
        let row = avatar::ActiveModel {
            content_hash: Set(avatar.content_hash.clone()),
            content_type: Set(avatar.content_type.to_owned()),
            bytes: Set(avatar.bytes.clone()),
            created_at: Set(now),
        };
        match avatar::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
        {
            Ok(_) => Ok(()),
            // The same picture again (or at the same instant): the bytes are already there.
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, content_hash: &str) -> Result<Option<StoredAvatar>, DbErr> {
        Ok(avatar::Entity::find_by_id(content_hash)
            .one(&self.db)
            .await?
            .map(|row| StoredAvatar {
                content_type: row.content_type,
                bytes: row.bytes,
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbaImage::from_pixel(width, height, image::Rgba([200, 10, 10, 255]));
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba8(picture)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        bytes
    }

    #[test]
    fn a_wide_picture_becomes_a_small_square_jpeg() {
        let encoded = encode_avatar(&png(1000, 700)).unwrap();
        let decoded = image::load_from_memory(&encoded.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (640, 640));
        assert_eq!(
            image::guess_format(&encoded.bytes).unwrap(),
            ImageFormat::Jpeg
        );
        assert!(is_content_hash(&encoded.content_hash));
    }

    #[test]
    fn a_small_picture_keeps_its_size() {
        let decoded =
            image::load_from_memory(&encode_avatar(&png(100, 120)).unwrap().bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (100, 100));
    }

    #[test]
    fn text_and_gifs_are_refused() {
        assert_eq!(
            encode_avatar(b"hello, not a picture"),
            Err(AvatarRefused::NotAnImage)
        );
        assert_eq!(
            encode_avatar(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"),
            Err(AvatarRefused::NotAnImage)
        );
        let mut truncated = png(50, 50);
        truncated.truncate(60);
        assert_eq!(encode_avatar(&truncated), Err(AvatarRefused::Undecodable));
    }

    #[test]
    fn transparency_becomes_white() {
        let clear = image::RgbaImage::from_pixel(4, 4, image::Rgba([0, 0, 0, 0]));
        let rgb = flatten_on_white(&DynamicImage::ImageRgba8(clear));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }
}
