/**
 * Fresh URLs for stored files. The renderer stores a file's signed URL in its row (a clip's
 * `fileUrl`, an export's), and a signed URL stops working when it expires (a week after the upload
 * by default): a page that showed it as it is would show a broken video from then on. `FileUrls`
 * asks syncd for a new signature of the same file, with the editor's own token, and keeps it while
 * at least half of its life is left, so a page that shows many clips asks once per file.
 */

/** Seconds a URL from `FileUrls.fresh` is signed for (a day); it is handed out while 12 h or more are left. */
export const FILE_URL_SECONDS = 24 * 3600;

/** Where a signed Storage URL points: the same path in Supabase Storage and in syncd's local mode. */
const SIGNED = /\/storage\/v1\/object\/sign\/([^/]+)\/(.+)$/;

/** The bucket and path of a signed Storage URL (syncd's or Supabase's), or null for any other URL (a public one, a CDN's, no URL at all). */
export function signedObject(url: string): { bucket: string; path: string } | null {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return null;
  }
  const match = SIGNED.exec(pathname);
  if (match === null) return null;
  try {
    return { bucket: decodeURIComponent(match[1]!), path: match[2]!.split("/").map(decodeURIComponent).join("/") };
  } catch {
    return null; // a malformed escape: not a URL syncd made
  }
}

/** One file's fresh URL, or the request for it that is under way. */
interface Entry {
  url: Promise<string>;
  /** `Date.now()` after which the URL is asked for again. */
  renewAt: number;
}

/** The fresh URLs of one studio; `sign` asks syncd for a new one. */
export class FileUrls {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly sign: (bucket: string, path: string, expiresIn: number) => Promise<string>,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * A URL that shows the file now: for a signed Storage URL, a new one of the same file, valid for
   * 12 hours at least; any other URL as it is, and null for none.
   *
   * @throws HttpError from syncd: `404` for a file that is not stored, `403` for another user's project.
   */
  fresh(url: string | null | undefined): Promise<string | null> {
    if (url === null || url === undefined || url === "") return Promise.resolve(null);
    const object = signedObject(url);
    if (object === null) return Promise.resolve(url);
    const key = `${object.bucket}/${object.path}`;
    const known = this.entries.get(key);
    if (known !== undefined && this.now() < known.renewAt) return known.url;
    const entry: Entry = {
      url: this.sign(object.bucket, object.path, FILE_URL_SECONDS),
      renewAt: this.now() + (FILE_URL_SECONDS / 2) * 1000,
    };
    this.entries.set(key, entry);
    entry.url.catch(() => {
      if (this.entries.get(key) === entry) this.entries.delete(key); // the next call asks again
    });
    return entry.url;
  }
}
