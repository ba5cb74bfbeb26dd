/** Where the studio keeps what must outlive a page: the browser's `localStorage`, or a caller's own. */

/**
 * The part of the Web Storage API the studio uses. `key` and `length` list what is kept; without
 * them, the edits of a closed tab cannot be found again (see `recovery.ts`).
 */
export type KeyValueStorage = Pick<Storage, "getItem" | "setItem" | "removeItem"> & Partial<Pick<Storage, "key" | "length">>;

/** The browser's `localStorage`, or null where there is none or reading it is refused (a sandboxed frame). */
export function browserStorage(): KeyValueStorage | null {
  try {
    return (globalThis as { localStorage?: KeyValueStorage }).localStorage ?? null;
  } catch {
    return null;
  }
}

/** `use(storage)`, or null without a storage or when the browser refuses it (private mode, a full quota). */
export function stored<T>(storage: KeyValueStorage | null, use: (storage: KeyValueStorage) => T): T | null {
  if (storage === null) return null;
  try {
    return use(storage);
  } catch {
    return null;
  }
}

/** The keys of `storage` that start with `prefix` (none when it cannot list them). */
export function storedKeys(storage: KeyValueStorage | null, prefix: string): string[] {
  const keys: string[] = [];
  stored(storage, (s) => {
    if (typeof s.key !== "function" || typeof s.length !== "number") return;
    for (let i = 0; i < s.length; i += 1) {
      const key = s.key(i);
      if (key !== null && key.startsWith(prefix)) keys.push(key);
    }
  });
  return keys;
}
