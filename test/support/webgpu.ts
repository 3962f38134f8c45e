import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** SwiftShader's Vulkan driver as Debian's chromium package ships it; `.ci/run` installs chromium and libvulkan1. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Points the Vulkan loader at SwiftShader (unless the environment already names a driver), so that ONNX Runtime's
 * WebGPU provider gets an adapter on a machine without a GPU. Must run before the process's first WebGPU session: the
 * loader reads these variables once. A machine without the driver fails the test with what to install, rather than
 * skipping it — CI must run the WebGPU path, and a skipped test would look like a passing one.
 */
export function useSwiftShaderUnlessConfigured(): void {
  if (!process.env.VK_ICD_FILENAMES) {
    if (!existsSync(SWIFTSHADER_ICD)) {
      throw new Error(
        `The WebGPU tests need a Vulkan driver: install Debian's chromium and libvulkan1 (apt-get install chromium libvulkan1), which ship ${SWIFTSHADER_ICD}, or set VK_ICD_FILENAMES to a GPU's driver.`,
      );
    }
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= mkdtempSync(join(tmpdir(), 'imagine-xdg-'));
}

/** Environment for a child process that should see the same Vulkan driver. */
export function webgpuEnvironment(): NodeJS.ProcessEnv {
  useSwiftShaderUnlessConfigured();
  return { ...process.env };
}
