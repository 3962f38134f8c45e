import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.js';
import { loadModelFolder } from '../../src/engine/model-folder.js';
import { bindingProviderConfig, checkProviderOptions, providerOptionProblems } from '../../src/engine/provider-options.js';

const TINY_SD = 'test/fixtures/models/tiny-sd';

async function loadError(run: () => Promise<unknown>): Promise<EngineError> {
  try {
    await run();
  } catch (error) {
    if (error instanceof EngineError) return error;
    throw error;
  }
  throw new Error('expected the load to be refused');
}

describe('CUDA and TensorRT options', () => {
  it('hands the device id to cuda and tensorrt under the key onnxruntime-node reads', () => {
    expect(bindingProviderConfig('cuda', { deviceId: 1 })).toEqual({ name: 'cuda', deviceId: 1 });
    expect(bindingProviderConfig('tensorrt', { deviceId: 2 })).toEqual({ name: 'tensorrt', deviceId: 2 });
    expect(providerOptionProblems(['tensorrt', 'cuda', 'cpu'], { deviceId: 1 })).toEqual([]);
  });

  it('gives a provider without options, and the cpu provider, its bare name', () => {
    expect(bindingProviderConfig('cuda', {})).toBe('cuda');
    expect(bindingProviderConfig('cpu', { deviceId: 1 })).toBe('cpu');
    expect(bindingProviderConfig('webgpu', { deviceId: 1 })).toBe('webgpu');
  });

  it.each([
    ['CUDA_MEMORY_LIMIT_MB', 'cuda', { cudaMemoryLimitBytes: 4 * 1024 ** 3 }, 'CUDA', 'gpu_mem_limit'],
    ['CUDNN_CONV_ALGO_SEARCH', 'cuda', { cudnnConvAlgoSearch: 'heuristic' as const }, 'CUDA', 'cudnn_conv_algo_search'],
    ['TENSORRT_ENGINE_CACHE_DIR', 'tensorrt', { tensorrtEngineCacheDir: '/cache/trt' }, 'TensorRT', 'trt_engine_cache_path'],
    ['TENSORRT_FP16', 'tensorrt', { tensorrtFp16: true }, 'TensorRT', 'trt_fp16_enable'],
  ])('refuses %s, which onnxruntime-node 1.30 cannot pass to the %s provider', (setting, provider, options, title, ortOption) => {
    const [problem, ...others] = providerOptionProblems([provider, 'cpu'], options);
    expect(others).toEqual([]);
    expect(problem.setting).toBe(setting);
    expect(problem.message).toContain(`cannot reach the ${title} provider`);
    expect(problem.message).toContain(`${ortOption} would be silently ignored`);
    expect(problem.message).toContain(`Unset ${setting}`);
  });

  it('refuses an option for a provider that is not in use', () => {
    expect(providerOptionProblems(['cuda'], { tensorrtFp16: false })).toEqual([
      {
        setting: 'TENSORRT_FP16',
        message: 'is for the tensorrt provider, which is not among the providers in use (cuda): add it to ORT_PROVIDERS or unset TENSORRT_FP16',
      },
    ]);
    expect(providerOptionProblems(['webgpu'], { deviceId: 0 })[0].message).toContain('is for the cuda or tensorrt or dml provider');
  });

  it('names every refused option in one error', () => {
    let error: unknown;
    try {
      checkProviderOptions(['cuda'], { cudaMemoryLimitBytes: 1, cudnnConvAlgoSearch: 'exhaustive', deviceId: 0 });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(EngineError);
    expect((error as EngineError).kind).toBe('invalid_input');
    expect((error as EngineError).details).toEqual({ settings: ['CUDA_MEMORY_LIMIT_MB', 'CUDNN_CONV_ALGO_SEARCH'] });
  });

  it('refuses the options at load, before any provider is asked to start', async () => {
    // Without the CUDA provider's libraries on this machine, opening a session would fail with a provider-load error;
    // the option check comes first and says what to change.
    const error = await loadError(() => loadModelFolder(TINY_SD, { executionProviders: ['cuda'], providerOptions: { cudaMemoryLimitBytes: 1 << 30 } }));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toMatch(/^CUDA_MEMORY_LIMIT_MB cannot reach the CUDA provider/);
  });

  it('refuses a provider name that does not exist, listing the ones that do', async () => {
    const error = await loadError(() => loadModelFolder(TINY_SD, { executionProviders: ['rocm' as 'cpu'] }));
    expect(error.kind).toBe('invalid_input');
    expect(error.userMessage).toBe("Unknown execution provider 'rocm'. Use one of: cpu, cuda, tensorrt, coreml, dml, webgpu.");
  });

  it('loads on the cpu provider with no GPU options set', async () => {
    const model = await loadModelFolder(TINY_SD, { executionProviders: ['cpu'], providerOptions: {} });
    await model.release();
  });
});
