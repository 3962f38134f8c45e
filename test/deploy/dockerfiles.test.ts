import { readFileSync } from 'node:fs';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';

const DOCKERFILES = ['deploy/Dockerfile.bot', 'deploy/Dockerfile.worker-cuda', 'deploy/Dockerfile.worker-webgpu'];

describe.each(DOCKERFILES)('%s', (path) => {
  const text = readFileSync(path, 'utf8');

  it('passes the Dockerfile validator without a single diagnostic', () => {
    expect(validate(text).map((diagnostic) => `${diagnostic.range.start.line + 1}: ${diagnostic.message}`)).toEqual([]);
  });

  it('says whether onnxruntime-node downloads its CUDA libraries before npm ci (an environment variable, which wins over .npmrc)', () => {
    const install = text.search(/^ENV ONNXRUNTIME_NODE_INSTALL=(skip|cuda12)$/m);
    expect(install).toBeGreaterThan(0);
    expect(text.indexOf('RUN npm ci')).toBeGreaterThan(install);
  });

  it('builds from pinned base images', () => {
    const images = [...text.matchAll(/^ARG \w+_IMAGE=(\S+)$/gm)].map((match) => match[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toMatch(/:\d[\w.-]*$/);
    expect(text).not.toMatch(/^FROM (?!\$\{)/m);
  });

  it('starts the service entry point as a non-root user', () => {
    expect(text).toMatch(/^ENTRYPOINT \["node", "--import", "tsx", "src\/service\/main\.ts"\]$/m);
    expect(text).toMatch(/^USER (node|1000:1000)$/m);
  });

  it('has a build context filter that keeps local data and secrets out', () => {
    const ignore = readFileSync(`${path}.dockerignore`, 'utf8').split('\n');
    expect(ignore[ignore.findIndex((line) => !line.startsWith('#'))]).toBe('**');
    expect(ignore).not.toContain('!data/**');
    expect(ignore).not.toContain('!deploy/.env');
  });
});

describe('the Dockerfile validator', () => {
  it('reports a broken Dockerfile, so a clean result means something', () => {
    expect(validate('FROM node:20\nCOPY onlyone\nEXPOSE port\n').length).toBeGreaterThan(0);
  });
});

describe('the repository .npmrc', () => {
  it('skips the CUDA download of onnxruntime-node for a plain npm ci (it fails offline), beside exact pins', () => {
    const settings = readFileSync('.npmrc', 'utf8').split('\n').filter((line) => line.trim() && !line.startsWith('#')).map((line) => line.split('=').map((part) => part.trim()));
    expect(settings).toEqual([['onnxruntime-node-install', 'skip'], ['save-exact', 'true']]);
  });
});

describe('the CUDA worker image', () => {
  const text = readFileSync('deploy/Dockerfile.worker-cuda', 'utf8');

  it('lets onnxruntime-node download its CUDA 12 provider', () => {
    const install = text.indexOf('ENV ONNXRUNTIME_NODE_INSTALL=cuda12');
    expect(install).toBeGreaterThan(0);
    expect(text.indexOf('RUN npm ci')).toBeGreaterThan(install);
    expect(text).toContain('libonnxruntime_providers_cuda.so');
  });

  it('runs on a CUDA 12 image with cuDNN and asks for the CUDA provider', () => {
    expect(text).toMatch(/^ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/m);
    expect(text).toMatch(/ORT_PROVIDERS=cuda$/m);
  });
});

describe('the WebGPU worker image', () => {
  const text = readFileSync('deploy/Dockerfile.worker-webgpu', 'utf8');

  it('downloads no provider: WebGPU is bundled in onnxruntime-node', () => {
    expect(text).toContain('ENV ONNXRUNTIME_NODE_INSTALL=skip');
    expect(text).not.toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda/);
  });

  it('brings the Vulkan loader and asks the NVIDIA container toolkit for the driver’s graphics (Vulkan) capability', () => {
    expect(text).toMatch(/apt-get install -y --no-install-recommends libvulkan1/);
    expect(text).toMatch(/NVIDIA_DRIVER_CAPABILITIES=\S*\bgraphics\b/);
    expect(text).toMatch(/ORT_PROVIDERS=webgpu\b/);
  });
});

describe('the bot image', () => {
  it('skips onnxruntime-node’s CUDA download: its CPU provider is bundled', () => {
    expect(readFileSync('deploy/Dockerfile.bot', 'utf8')).toContain('ENV ONNXRUNTIME_NODE_INSTALL=skip');
  });
});
