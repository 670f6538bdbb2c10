// Open Inference Protocol datatypes and their onnxruntime tensor types, with
// the conversions between JSON values and typed arrays for each.
import type * as ort from "onnxruntime-node";

export type KserveDatatype = "BOOL" | "UINT8" | "UINT16" | "UINT32" | "UINT64" | "INT8" | "INT16" | "INT32" | "INT64" | "FP16" | "FP32" | "FP64" | "BYTES";

type TensorData = ort.Tensor["data"];

interface DatatypeCodec {
  readonly ortType: ort.Tensor.Type;
  /** Builds tensor data from flat JSON values; returns an error message for a bad value. */
  fromJson(values: readonly unknown[]): TensorData | string;
  toJson(data: TensorData): unknown[];
}

const ORT_TO_KSERVE: Partial<Record<string, KserveDatatype>> = {
  bool: "BOOL",
  uint8: "UINT8",
  uint16: "UINT16",
  uint32: "UINT32",
  uint64: "UINT64",
  int8: "INT8",
  int16: "INT16",
  int32: "INT32",
  int64: "INT64",
  float16: "FP16",
  float32: "FP32",
  float64: "FP64",
  string: "BYTES",
};

/** The protocol name of an onnxruntime type, or the ORT name upper-cased when it has none. */
export function kserveDatatypeOf(ortType: string): string {
  return ORT_TO_KSERVE[ortType] ?? ortType.toUpperCase();
}

function badValue(index: number, value: unknown, what: string): string {
  return `element ${index} is ${JSON.stringify(value) ?? String(value)}, expected ${what}`;
}

function floats<A extends Float32Array | Float64Array>(make: (n: number) => A): DatatypeCodec["fromJson"] {
  return (values) => {
    const out = make(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number") return badValue(i, v, "a number");
      out[i] = v;
    }
    return out;
  };
}

function integers<A extends Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array>(
  make: (n: number) => A,
  min: number,
  max: number,
): DatatypeCodec["fromJson"] {
  return (values) => {
    const out = make(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        return badValue(i, v, `an integer in [${min}, ${max}]`);
      }
      out[i] = v;
    }
    return out;
  };
}

/** 64-bit integers arrive as JSON numbers (or, for values beyond 2^53, decimal strings). */
function bigIntegers<A extends BigInt64Array | BigUint64Array>(make: (n: number) => A, min: bigint, max: bigint): DatatypeCodec["fromJson"] {
  return (values) => {
    const out = make(values.length);
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      let n: bigint | undefined;
      if (typeof v === "number" && Number.isInteger(v)) n = BigInt(v);
      else if (typeof v === "string" && /^-?\d+$/.test(v)) n = BigInt(v);
      if (n === undefined || n < min || n > max) return badValue(i, v, `an integer in [${min}, ${max}]`);
      out[i] = n;
    }
    return out;
  };
}

const numbersToJson = (data: TensorData): unknown[] => Array.from(data as ArrayLike<number>);
const bigintsToJson = (data: TensorData): unknown[] => Array.from(data as BigInt64Array | BigUint64Array, (v) => Number(v));

const CODECS: Partial<Record<KserveDatatype, DatatypeCodec>> = {
  FP32: { ortType: "float32", fromJson: floats((n) => new Float32Array(n)), toJson: numbersToJson },
  FP64: { ortType: "float64", fromJson: floats((n) => new Float64Array(n)), toJson: numbersToJson },
  INT8: { ortType: "int8", fromJson: integers((n) => new Int8Array(n), -128, 127), toJson: numbersToJson },
  UINT8: { ortType: "uint8", fromJson: integers((n) => new Uint8Array(n), 0, 255), toJson: numbersToJson },
  INT16: { ortType: "int16", fromJson: integers((n) => new Int16Array(n), -32768, 32767), toJson: numbersToJson },
  UINT16: { ortType: "uint16", fromJson: integers((n) => new Uint16Array(n), 0, 65535), toJson: numbersToJson },
  INT32: {
    ortType: "int32",
    fromJson: integers((n) => new Int32Array(n), -2147483648, 2147483647),
    toJson: numbersToJson,
  },
  UINT32: { ortType: "uint32", fromJson: integers((n) => new Uint32Array(n), 0, 4294967295), toJson: numbersToJson },
  INT64: {
    ortType: "int64",
    fromJson: bigIntegers((n) => new BigInt64Array(n), -(2n ** 63n), 2n ** 63n - 1n),
    toJson: bigintsToJson,
  },
  UINT64: {
    ortType: "uint64",
    fromJson: bigIntegers((n) => new BigUint64Array(n), 0n, 2n ** 64n - 1n),
    toJson: bigintsToJson,
  },
  BOOL: {
    ortType: "bool",
    fromJson: (values) => {
      const out = new Uint8Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i];
        if (typeof v !== "boolean") return badValue(i, v, "true or false");
        out[i] = v ? 1 : 0;
      }
      return out;
    },
    toJson: (data) => Array.from(data as Uint8Array, (v) => v !== 0),
  },
  BYTES: {
    ortType: "string",
    fromJson: (values) => {
      for (let i = 0; i < values.length; i++) {
        if (typeof values[i] !== "string") return badValue(i, values[i], "a string");
      }
      return values as string[];
    },
    toJson: (data) => [...(data as string[])],
  },
};

/** The codec of a protocol datatype, or undefined when this server cannot carry it as JSON (FP16). */
export function codecFor(datatype: string): DatatypeCodec | undefined {
  return CODECS[datatype as KserveDatatype];
}
