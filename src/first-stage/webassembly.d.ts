// The few WebAssembly JavaScript API types the generated kernels use. Node has the API, but the
// project compiles against ES2022 without the DOM library, which is where TypeScript declares it.
declare global {
  namespace WebAssembly {
    class Module {
      constructor(bytes: Uint8Array);
    }
    class Memory {
      constructor(descriptor: { initial: number; maximum?: number; shared?: boolean });
      /** A SharedArrayBuffer for a shared memory. */
      readonly buffer: ArrayBuffer;
      grow(delta: number): number;
    }
    class Global {
      value: unknown;
    }
    /** Whether `bytes` is a module this engine accepts (false, for instance, where SIMD is off). */
    function validate(bytes: Uint8Array): boolean;
    class Instance {
      constructor(module: Module, imports?: Record<string, Record<string, unknown>>);
      readonly exports: Record<string, unknown>;
    }
  }
}
export {};
