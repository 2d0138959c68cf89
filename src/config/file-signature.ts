/**
 * A file's change signature: its path, the real path it resolves to, inode, size and mtime. It
 * changes when a Kubernetes Secret or ConfigMap is updated (the `..data` symlink swap moves the
 * real path), when an editor replaces the file (new inode) and when it is written in place (size,
 * mtime). Used by the CRL file sources and by the config file watch. Only stat calls, no reads.
 */
import { realpath, stat } from 'node:fs/promises';

/** Throws as realpath/stat do when the file is missing or unreadable. */
export async function fileSignature(file: string): Promise<string> {
  const real = await realpath(file);
  const st = await stat(real);
  return `${file}->${real}:${st.ino}:${st.size}:${st.mtimeMs}`;
}
