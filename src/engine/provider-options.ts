import type * as ort from 'onnxruntime-node';
import { invalidInput } from './errors.js';

/**
 * The CUDA and TensorRT settings an operator can ask for, and how far onnxruntime-node 1.30 can carry each one.
 *
 * The Node binding (js/node/src/session_options_helper.cc, ParseExecutionProviders) creates an
 * OrtCUDAProviderOptionsV2 / OrtTensorRTProviderOptionsV2, copies `deviceId` into it and nothing else; every other key
 * of a `{ name: 'cuda', … }` object is dropped without a word. Nor is there a side door: the CUDA provider reads no
 * environment variables for its memory limit or cuDNN search, and the TensorRT provider reads its ORT_TENSORRT_*
 * variables only when it is created without an options struct — and the binding always hands it one
 * (tensorrt_provider_factory.cc sets has_trt_options; the provider's constructor then takes fp16 and the engine cache
 * from the struct's defaults). So a setting the binding cannot pass is refused at start-up, naming the setting, rather
 * than accepted and silently ignored.
 */

export const CUDNN_CONV_ALGO_SEARCHES = ['exhaustive', 'heuristic', 'default'] as const;
export type CudnnConvAlgoSearch = (typeof CUDNN_CONV_ALGO_SEARCHES)[number];

export interface GpuProviderOptions {
  /** Which GPU the cuda, tensorrt or dml provider runs on (CUDA numbering). */
  deviceId?: number;
  /** The CUDA provider's arena cap (its gpu_mem_limit option). */
  cudaMemoryLimitBytes?: number;
  /** How the CUDA provider picks convolution algorithms (its cudnn_conv_algo_search option). */
  cudnnConvAlgoSearch?: CudnnConvAlgoSearch;
  /** Where the TensorRT provider keeps built engines between starts (trt_engine_cache_enable + trt_engine_cache_path). */
  tensorrtEngineCacheDir?: string;
  /** Let TensorRT build float16 kernels (trt_fp16_enable). */
  tensorrtFp16?: boolean;
}

type OptionName = keyof GpuProviderOptions;

interface OptionRoute {
  /** The variable an operator sets (src/service/config.ts); errors name it. */
  setting: string;
  providers: readonly string[];
  /** The provider option the setting stands for, in ONNX Runtime's own words. */
  ortOption: string;
  /** The key onnxruntime-node 1.30 copies into the provider's options, when it copies this one at all. */
  bindingKey?: 'deviceId';
}

export const GPU_OPTION_ROUTES: Record<OptionName, OptionRoute> = {
  deviceId: { setting: 'GPU_DEVICE_ID', providers: ['cuda', 'tensorrt', 'dml'], ortOption: 'device_id', bindingKey: 'deviceId' },
  cudaMemoryLimitBytes: { setting: 'CUDA_MEMORY_LIMIT_MB', providers: ['cuda'], ortOption: 'gpu_mem_limit' },
  cudnnConvAlgoSearch: { setting: 'CUDNN_CONV_ALGO_SEARCH', providers: ['cuda'], ortOption: 'cudnn_conv_algo_search' },
  tensorrtEngineCacheDir: { setting: 'TENSORRT_ENGINE_CACHE_DIR', providers: ['tensorrt'], ortOption: 'trt_engine_cache_path' },
  tensorrtFp16: { setting: 'TENSORRT_FP16', providers: ['tensorrt'], ortOption: 'trt_fp16_enable' },
};

export interface ProviderOptionProblem {
  setting: string;
  message: string;
}

const PROVIDER_TITLES: Record<string, string> = { cuda: 'CUDA', tensorrt: 'TensorRT', dml: 'DirectML' };

/** Every option that is set but cannot reach a provider in `providers`, each with what to change. */
export function providerOptionProblems(providers: readonly string[], options: GpuProviderOptions): ProviderOptionProblem[] {
  const problems: ProviderOptionProblem[] = [];
  for (const [name, route] of Object.entries(GPU_OPTION_ROUTES) as [OptionName, OptionRoute][]) {
    if (options[name] === undefined) continue;
    const targets = route.providers.filter((provider) => providers.includes(provider));
    if (targets.length === 0) {
      problems.push({
        setting: route.setting,
        message: `is for the ${route.providers.join(' or ')} provider, which is not among the providers in use (${providers.join(', ')}): add it to ORT_PROVIDERS or unset ${route.setting}`,
      });
    } else if (route.bindingKey === undefined) {
      const title = targets.map((provider) => PROVIDER_TITLES[provider] ?? provider).join('/');
      problems.push({
        setting: route.setting,
        message:
          `cannot reach the ${title} provider: onnxruntime-node 1.30 passes only the device id to it, so ${route.ortOption} would be silently ignored ` +
          `(and the provider takes no environment variable for it when started from Node). Unset ${route.setting}`,
      });
    }
  }
  return problems;
}

/** Throws one invalid_input error listing every option that cannot be passed; see providerOptionProblems. */
export function checkProviderOptions(providers: readonly string[], options: GpuProviderOptions): void {
  const problems = providerOptionProblems(providers, options);
  if (problems.length === 0) return;
  throw invalidInput(`${problems.map((problem) => `${problem.setting} ${problem.message}`).join('; ')}.`, {
    settings: problems.map((problem) => problem.setting),
  });
}

/** What onnxruntime-node is given for one provider: its name alone, or the object carrying what the binding reads. */
export function bindingProviderConfig(provider: string, options: GpuProviderOptions): ort.InferenceSession.ExecutionProviderConfig {
  const carried: Record<string, unknown> = {};
  for (const [name, route] of Object.entries(GPU_OPTION_ROUTES) as [OptionName, OptionRoute][]) {
    if (route.bindingKey !== undefined && options[name] !== undefined && route.providers.includes(provider)) carried[route.bindingKey] = options[name];
  }
  return Object.keys(carried).length === 0 ? provider : { name: provider, ...carried };
}
