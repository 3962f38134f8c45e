import sharp from 'sharp';
import { zoomedOutSize, type PanPlan } from './edit-sizes.js';
import type { PanDirection } from './limits.js';
import { rectangleMask, type Mask } from './masks.js';
import type { RgbImage } from './types.js';

/**
 * The canvases of outpainting. Zoom Out shrinks the picture into the centre of a canvas of the same size; Pan grows the
 * canvas by half on one side (or, for a model that makes one size only, shifts the view by half). The new area is
 * masked for the inpainting pipeline and filled with the picture's edge pixels stretched outwards, so the soft mask
 * edge blends into colours that belong there.
 */
export interface Canvas {
  image: RgbImage;
  /** 1 over the new area. */
  mask: Mask;
}

type Size = { width: number; height: number };

/** The picture shrunk by `factor` into the centre of a canvas of its own size. */
export async function zoomOutCanvas(picture: RgbImage, factor: number): Promise<Canvas> {
  const { width, height } = picture;
  const inner = zoomedOutSize(picture, factor);
  const left = Math.floor((width - inner.width) / 2);
  const top = Math.floor((height - inner.height) / 2);
  const data = await raw(picture)
    .resize(inner.width, inner.height, { fit: 'fill', kernel: 'lanczos3' })
    .extend({ left, top, right: width - inner.width - left, bottom: height - inner.height - top, extendWith: 'copy' })
    .raw()
    .toBuffer();
  return { image: rgb({ width, height }, data), mask: rectangleMask({ width, height }, { x: left, y: top, ...inner }, true) };
}

/** The picture moved to make room for `plan.newPx` new pixels on the `direction` side. */
export async function panCanvas(picture: RgbImage, direction: PanDirection, plan: PanPlan): Promise<Canvas> {
  const { newPx } = plan;
  const horizontal = direction === 'left' || direction === 'right';
  let image = raw(picture);
  if (plan.mode === 'shift') {
    // Keep the part of the picture on the far side of the pan and slide it over.
    const keep = horizontal ? { width: picture.width - newPx, height: picture.height } : { width: picture.width, height: picture.height - newPx };
    const left = direction === 'right' ? newPx : 0;
    const top = direction === 'down' ? newPx : 0;
    image = sharp(await image.extract({ left, top, ...keep }).raw().toBuffer(), { raw: { ...keep, channels: 3 } });
  }
  const data = await image
    .extend({
      left: direction === 'left' ? newPx : 0,
      right: direction === 'right' ? newPx : 0,
      top: direction === 'up' ? newPx : 0,
      bottom: direction === 'down' ? newPx : 0,
      extendWith: 'copy',
    })
    .raw()
    .toBuffer();
  const size = { width: plan.width, height: plan.height };
  const strip = {
    x: direction === 'right' ? plan.width - newPx : 0,
    y: direction === 'down' ? plan.height - newPx : 0,
    width: horizontal ? newPx : plan.width,
    height: horizontal ? plan.height : newPx,
  };
  return { image: rgb(size, data), mask: rectangleMask(size, strip) };
}

const raw = (picture: RgbImage) =>
  sharp(Buffer.from(picture.data.buffer, picture.data.byteOffset, picture.data.byteLength), { raw: { width: picture.width, height: picture.height, channels: 3 } });

const rgb = (size: Size, data: Buffer): RgbImage => ({ ...size, data: new Uint8Array(data.buffer, data.byteOffset, data.length) });
