/** One property of a dataset as `zfs get -H -p` reports it. */
export interface PropValue {
  value: string;
  source: string;
}

/** dataset name → property → value/source, in `zfs get` order (parents before children). */
export type PropTable = Map<string, Record<string, PropValue>>;
