/**
 * What `sharp` resolves to inside the GPU check's bundle (scripts/gpu-check/prepare.sh). The check never makes a
 * picture, and sharp's native libraries (20 MB) would not fit in what travels to the GPU machine.
 */
export default function sharpIsNotBundled(): never {
  throw new Error('The GPU check bundle has no sharp: it times the UNet loop and makes no pictures.');
}
